import { describe, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { loadCloudConfig, ConfigError } from "../../../cloud/config.js";

const problems = (env: Record<string, string>) => {
  try {
    loadCloudConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe("cloud configuration", () => {
  it("starts with only CLOUD_DATA_DIR, CLOUD_HTTP_PORT and CLOUD_INFLUX_URL set: PGlite, generated key, port 8000 by default", () => {
    const c = loadCloudConfig({ CLOUD_DATA_DIR: "/var/lib/cloud", CLOUD_INFLUX_URL: "http://influx:8086/" });
    expect(c.http.port).toBe(8000);
    expect(c.databaseUrl).toBeNull();
    expect(c.jwt.privateKeyPem).toBeNull();
    expect(c.influx).toEqual({ url: "http://influx:8086", user: null, password: null, token: null, dbPrefix: "smartplug", createDatabases: true, timeoutMs: 10_000 });
    expect(c.tokens).toEqual({ accessTtlSec: 900, refreshTtlSec: 30 * 86_400 });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("lists every bad variable at once, the signing key and InfluxDB credentials included", () => {
    expect(problems({ CLOUD_HTTP_PORT: "eighty", CLOUD_DATABASE_URL: "mysql://x", CLOUD_INFLUX_URL: "ftp://x", CLOUD_LOG_LEVEL: "loud" }).map((p) => p.split(":")[0])).toEqual([
      "CLOUD_HTTP_PORT",
      "CLOUD_LOG_LEVEL",
      "CLOUD_DATABASE_URL",
      "CLOUD_INFLUX_URL",
    ]);
    expect(problems({ CLOUD_HTTP_PORT: "eighty", CLOUD_JWT_PRIVATE_KEY: "changeme", CLOUD_INFLUX_USER: "u" }).map((p) => p.split(":")[0])).toEqual([
      "CLOUD_HTTP_PORT",
      "CLOUD_INFLUX_USER / CLOUD_INFLUX_PASSWORD",
      "CLOUD_JWT_PRIVATE_KEY",
    ]);
  });

  it("refuses a short or default signing key, and a key that is not Ed25519", () => {
    for (const bad of ["changeme", "secret", "x".repeat(64)]) expect(problems({ CLOUD_JWT_PRIVATE_KEY: bad })[0]).toMatch(/^CLOUD_JWT_PRIVATE_KEY: refusing a short or default value/);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(problems({ CLOUD_JWT_PRIVATE_KEY: rsa })).toEqual(["CLOUD_JWT_PRIVATE_KEY: must be an Ed25519 key, got rsa"]);
    const ed = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    expect(loadCloudConfig({ CLOUD_JWT_PRIVATE_KEY: ed.replace(/\n/g, "\\n") }).jwt.privateKeyPem).toBe(ed);
  });

  it("issue 5 §9: refuses a default or short InfluxDB password or token, listing every bad variable with the others", () => {
    const refused = (name: string) => `${name}: refusing a short or default value; give at least 12 characters that are not a well-known default, or leave it unset`;
    for (const bad of ["changeme", "password", "admin", "root", "ADMIN", " root ", "my-super-secret-auth-token", "short-11chr"]) {
      expect(problems({ CLOUD_INFLUX_USER: "cloud", CLOUD_INFLUX_PASSWORD: bad }), bad).toEqual([refused("CLOUD_INFLUX_PASSWORD")]);
      expect(problems({ CLOUD_INFLUX_TOKEN: bad }), bad).toEqual([refused("CLOUD_INFLUX_TOKEN")]);
    }
    expect(problems({ CLOUD_HTTP_PORT: "eighty", CLOUD_INFLUX_USER: "cloud", CLOUD_INFLUX_PASSWORD: "admin", CLOUD_INFLUX_TOKEN: "changeme", CLOUD_JWT_PRIVATE_KEY: "secret" })).toEqual([
      "CLOUD_HTTP_PORT: Invalid input: expected number, received NaN",
      refused("CLOUD_INFLUX_PASSWORD"),
      refused("CLOUD_INFLUX_TOKEN"),
      "CLOUD_JWT_PRIVATE_KEY: refusing a short or default value; give a PKCS#8 PEM Ed25519 private key (openssl genpkey -algorithm ed25519) or leave it unset to generate one in CLOUD_DATA_DIR",
    ]);
    const ok = loadCloudConfig({ CLOUD_INFLUX_USER: "cloud", CLOUD_INFLUX_PASSWORD: "correct-horse-battery", CLOUD_INFLUX_TOKEN: "apiv3_Zk2x9QpL0rT7vW4yB8nC" });
    expect(ok.influx).toMatchObject({ user: "cloud", password: "correct-horse-battery", token: "apiv3_Zk2x9QpL0rT7vW4yB8nC" });
  });

  it("wants InfluxDB user and password together, and token lifetimes in range", () => {
    expect(problems({ CLOUD_INFLUX_USER: "u" })).toEqual(["CLOUD_INFLUX_USER / CLOUD_INFLUX_PASSWORD: set both or neither"]);
    expect(problems({ CLOUD_INFLUX_PASSWORD: "long-enough-password" })).toEqual(["CLOUD_INFLUX_USER / CLOUD_INFLUX_PASSWORD: set both or neither"]);
    expect(problems({ CLOUD_ACCESS_TOKEN_TTL_S: "86400" })[0]).toMatch(/^CLOUD_ACCESS_TOKEN_TTL_S/);
    expect(loadCloudConfig({ CLOUD_DATABASE_URL: "postgres://u@db:5432/cloud" }).databaseUrl).toBe("postgres://u@db:5432/cloud");
  });
});
