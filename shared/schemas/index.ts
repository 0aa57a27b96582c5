export * from "./common.js";
export * from "./auth.js";
export * from "./devices.js";
export * from "./telemetry.js";
export * from "./health.js";
export * from "./schedules.js";
export * from "./energy.js";
export * from "./alerts.js";
