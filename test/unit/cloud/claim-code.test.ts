import { describe, expect, it } from "vitest";
import { newClaimCode, normalizeClaimCode } from "../../../cloud/hubs/hub-service.js";

describe("claim codes (A17)", () => {
  it("A17: are 10 Crockford base32 symbols, 50 bits, shown as XXXXX-XXXXX", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const c = newClaimCode();
      expect(c).toMatch(/^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{5}-[0-9ABCDEFGHJKMNPQRSTVWXYZ]{5}$/);
      seen.add(c);
    }
    expect(seen.size).toBe(2000);
    expect(Math.log2(32 ** 10)).toBeGreaterThanOrEqual(40);
  });

  it("accept what a person types: case, spaces, dashes and look-alike letters", () => {
    expect(normalizeClaimCode(" ab1cd efg0h ")).toBe("AB1CD-EFG0H");
    expect(normalizeClaimCode("o1il0-12345")).toBe("0111" + "0-12345");
    expect(normalizeClaimCode("ABCDE-FGHJU")).toBeNull();
    expect(normalizeClaimCode("short")).toBeNull();
    expect(normalizeClaimCode("ABCDE-FGHJK-MNPQR")).toBeNull();
  });
});
