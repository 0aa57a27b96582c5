// ReDoc at /redoc: a static page whose script is the `redoc` package's standalone bundle, served by this
// process (no CDN: the docs work on a closed network).
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

export function redocBundlePath(): string {
  return require.resolve("redoc/bundles/redoc.standalone.js");
}

export function redocPage(specUrl: string, scriptUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Smart Plug Cloud API — ReDoc</title>
<style>body { margin: 0; padding: 0; }</style>
</head>
<body>
<redoc spec-url="${specUrl}"></redoc>
<script src="${scriptUrl}"></script>
</body>
</html>
`;
}
