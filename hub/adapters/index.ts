import type { PlugFamily } from "../../shared/schemas/devices.js";
import type { PlugAdapter } from "./types.js";
import { nativeAdapter } from "./native-adapter.js";

/** The adapter table: a family slots in here and nowhere else (issue 2 §3). */
export function createAdapterRegistry(adapters: PlugAdapter[] = [nativeAdapter]): Map<PlugFamily, PlugAdapter> {
  return new Map(adapters.map((a) => [a.family, a]));
}
