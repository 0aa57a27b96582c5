// Small pure helpers shared by the simulators' payload builders.

/** Rounds to `digits` decimals; `+ 0` turns -0 into 0 so JSON never shows "-0". */
export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f + 0;
}

/** FNV-1a, 32 bit: stable per-string numbers for ids, MACs and seeds. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * 24 bits that look random but never repeat within one prefix: an odd multiplier is a bijection modulo 2^24,
 * so indexes 0…16 777 215 map to distinct values (the CLI allows 10 000 plugs).
 */
export function uniqueHex24(prefix: string, index: number): string {
  const v = (fnv1a(prefix) + Math.imul(index, 0x9e3779)) & 0xffffff;
  return v.toString(16).padStart(6, "0");
}
