import { createApp } from "./app.ts";
import type { Env } from "./env.ts";

export { HostRelay } from "./host-relay/host-relay.ts";

const app = createApp();

export default {
  fetch: (request, env, ctx) => app.fetch(request, env, ctx),
} satisfies ExportedHandler<Env>;
