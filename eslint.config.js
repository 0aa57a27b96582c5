// Lint: the recommended rules plus the type-aware ones that catch floating promises,
// which in async device code silently swallow errors (STYLE.md §8).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "data/**", "coverage/**", "hub/db/migrations/**", "bench-results/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: false }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-restricted-syntax": ["error", {
        selector: "MemberExpression[object.name='process'][property.name='env']",
        message: "Only main.ts (the composition root) reads process.env.",
      }],
    },
  },
  {
    files: ["hub/main.ts", "cloud/main.ts", "test/**/*.ts", "*.config.ts", "hub/db/drizzle.config.ts"],
    rules: { "no-restricted-syntax": "off" },
  },
);
