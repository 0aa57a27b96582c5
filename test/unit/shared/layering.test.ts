import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((f) => {
    const p = join(dir, f);
    return statSync(join(ROOT, p)).isDirectory() ? files(p) : /\.(ts|mjs)$/.test(f) ? [p] : [];
  });
}

const importsOf = (file: string) => [...readFileSync(join(ROOT, file), "utf8").matchAll(/from\s+"([^"]+)"/g)].map((m) => m[1]!);

describe("layering (ARCHITECTURE.md §2: hub → shared ← cloud)", () => {
  it("shared/ imports neither hub/ nor cloud/", () => {
    const bad = files("shared").flatMap((f) => importsOf(f).filter((i) => /(^|\/)(hub|cloud)\//.test(i)).map((i) => `${f}: ${i}`));
    expect(bad).toEqual([]);
  });
  it("hub/ never imports cloud/, and only main.ts reads process.env", () => {
    const hub = files("hub");
    expect(hub.flatMap((f) => importsOf(f).filter((i) => i.includes("cloud/")).map((i) => `${f}: ${i}`))).toEqual([]);
    expect(hub.filter((f) => f !== "hub/main.ts" && readFileSync(join(ROOT, f), "utf8").includes("process.env"))).toEqual([]);
  });
});
