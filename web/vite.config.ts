import { defineConfig } from 'vitest/config';

// `npm run dev` proxies the API to a running gateway (RTDASH_GATEWAY_URL, default
// http://127.0.0.1:8080) so the app can be developed with hot reload against the real stack.
const gateway = process.env.RTDASH_GATEWAY_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 200,
  },
  server: {
    proxy: { '/v1': { target: gateway, changeOrigin: false } },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
