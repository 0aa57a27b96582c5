import { defineConfig } from "drizzle-kit";

// `npx drizzle-kit generate --config cloud/db/drizzle.config.ts` writes a new migration after a schema change.
export default defineConfig({
  dialect: "postgresql",
  schema: "./cloud/db/schema.ts",
  out: "./cloud/db/migrations",
});
