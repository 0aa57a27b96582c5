import type { PlugFamily } from "../../shared/schemas/devices.js";
import type { PlugAdapter } from "./types.js";
import { nativeAdapter } from "./native-adapter.js";
import { tasmotaAdapter } from "./tasmota-adapter.js";
import { createShellyGen1Adapter } from "./shelly-gen1-adapter.js";
import { createShellyGen2Adapter } from "./shelly-gen2-adapter.js";

/** Every family the hub speaks. Stateful adapters (Shelly) get fresh state per hub. */
export function defaultAdapters(): PlugAdapter[] {
  return [nativeAdapter, tasmotaAdapter, createShellyGen1Adapter(), createShellyGen2Adapter()];
}

/** The adapter table: a family slots in here and nowhere else (issue 2 §3). */
export function createAdapterRegistry(adapters: PlugAdapter[] = defaultAdapters()): Map<PlugFamily, PlugAdapter> {
  return new Map(adapters.map((a) => [a.family, a]));
}
