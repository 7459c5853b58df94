export * from "./constants.ts";
export * from "./primitives.ts";
export * from "./commands.ts";
export * from "./messages.ts";
export * from "./rest.ts";
export * from "./jobs.ts";
export * from "./events.ts";
