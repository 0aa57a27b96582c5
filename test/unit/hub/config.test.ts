import { describe, expect, it } from "vitest";
import { loadHubConfig, ConfigError } from "../../../hub/config.js";

describe("hub configuration", () => {
  it("starts with defaults when only the documented basics are set", () => {
    const c = loadHubConfig({ HUB_DATA_DIR: "/var/lib/hub" });
    expect(c.http.port).toBe(8080);
    expect(c.mqtt.port).toBe(1883);
    expect(c.logLevel).toBe("info");
    // One group commit a second (or per 2,000 writes): ~80 B written per reading at 1,000 plugs × 1 Hz (npm run bench).
    expect(c.ingest).toEqual({ commitIntervalMs: 1000, maxBatch: 2000 });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("lists every bad variable at once", () => {
    try {
      loadHubConfig({ HUB_HTTP_PORT: "eighty", HUB_MQTT_PORT: "70000", HUB_LOG_LEVEL: "loud" });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.map((p) => p.split(":")[0])).toEqual(["HUB_HTTP_PORT", "HUB_MQTT_PORT", "HUB_LOG_LEVEL"]);
    }
  });

  it("F4: the cloud request timeout defaults to 30 s and cannot be set above it", () => {
    expect(loadHubConfig({}).sync.uplink.requestTimeoutMs).toBe(30_000);
    expect(loadHubConfig({ HUB_SYNC_TIMEOUT_MS: "5000" }).sync.uplink.requestTimeoutMs).toBe(5000);
    expect(() => loadHubConfig({ HUB_SYNC_TIMEOUT_MS: "30001" })).toThrow(ConfigError);
  });

  it("the cloud link reconnects with the uplink's backoff, capped at a minute", () => {
    expect(loadHubConfig({}).sync.link).toMatchObject({ backoffBaseMs: 1000, backoffMaxMs: 60_000 });
    expect(loadHubConfig({ HUB_SYNC_BACKOFF_BASE_MS: "100", HUB_SYNC_BACKOFF_MAX_S: "1" }).sync.link).toMatchObject({ backoffBaseMs: 100, backoffMaxMs: 1000 });
  });

  it("refuses a refresh token lifetime shorter than the 7 days a phone must stay signed in offline", () => {
    expect(() => loadHubConfig({ HUB_REFRESH_TOKEN_TTL_S: "3600" })).toThrow(ConfigError);
  });
});
