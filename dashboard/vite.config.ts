import path from "node:path";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Built by scripts/dashboard-build.ts (npm start, npm run build:dashboard) into dashboard/dist,
// which wrangler.toml's [assets] serves from the Worker.
export default defineConfig({
  root: import.meta.dirname,
  base: "/",
  plugins: [react()],
  build: {
    outDir: path.join(import.meta.dirname, "dist"),
    emptyOutDir: true,
    target: "es2022",
    // Without a source map: the bundle stays small and nothing is uploaded that no one loads.
    sourcemap: false,
    reportCompressedSize: true,
  },
  logLevel: "warn",
});
