// The benchmarks run the hub as the systemd unit does: the same node flags and the same environment.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { PROD_ENV, PROD_NODE_ARGS } from "../../bench/procs.js";

const unit = readFileSync(new URL("../../../systemd/smartplug-hub.service", import.meta.url), "utf8");

describe("production flags", () => {
  it("the bench's node flags and environment are the ones systemd/smartplug-hub.service starts the hub with", () => {
    const exec = unit.split("\n").find((l) => l.startsWith("ExecStart="))!;
    const args = exec.slice("ExecStart=".length).trim().split(/\s+/);
    expect(args[0]).toBe("/usr/bin/node");
    expect(args.at(-1)).toBe("/opt/smartplug/dist/hub/main.mjs");
    expect(args.slice(1, -1)).toEqual(PROD_NODE_ARGS);
    const env = Object.fromEntries(
      unit
        .split("\n")
        .filter((l) => l.startsWith("Environment="))
        .map((l) => l.slice("Environment=".length).split("=") as [string, string]),
    );
    expect(env).toEqual(PROD_ENV);
    const scripts = (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as { scripts: Record<string, string> }).scripts;
    expect(scripts["hub:prod"]).toBe(`${Object.entries(PROD_ENV).map(([k, v]) => `${k}=${v}`).join(" ")} node ${PROD_NODE_ARGS.join(" ")} dist/hub/main.mjs`);
  });
});
