import type { EventFilter, FleetEventInput } from "../../schemas/index.ts";

/** A filter as sets, so checking one event costs the same however many values each list holds. */
export interface CompiledFilter {
  hosts: ReadonlySet<string> | null;
  jobs: ReadonlySet<string> | null;
  tags: ReadonlySet<string> | null;
  types: ReadonlySet<string> | null;
}

export function compile(filter: EventFilter): CompiledFilter {
  const set = (values: readonly string[] | undefined) => (values === undefined ? null : new Set(values));
  return { hosts: set(filter.hosts), jobs: set(filter.jobs), tags: set(filter.tags), types: set(filter.types) };
}

/** Lists combine with AND; the values within one list with OR. An absent list matches everything. O(event's tags). */
export function matchesCompiled(f: CompiledFilter, event: FleetEventInput): boolean {
  if (f.types && !f.types.has(event.type)) return false;
  if (f.hosts && !(event.host_id !== undefined && f.hosts.has(event.host_id))) return false;
  if (f.jobs && !(event.job_id !== undefined && f.jobs.has(event.job_id))) return false;
  if (f.tags && !(event.tags ?? []).some((t) => f.tags!.has(t))) return false;
  return true;
}

export interface IndexedSubscriber {
  readonly ws: WebSocket;
  readonly id: string;
  readonly filter: CompiledFilter;
  /** The last event number `matching` visited this entry for (deduplicates tag buckets). */
  mark: number;
}

/**
 * The open subscribers, in memory, indexed by the one list that narrows them most cheaply: each is
 * filed under its hosts if it has a host filter, else its jobs, else its tags, else with those
 * that filter on none of them (by type only, or not at all). An event then visits only the
 * subscribers filed under its host, its job and its tags plus the unfiled ones, and checks each
 * against its other lists with set lookups: the cost per event grows with the subscribers it may
 * match, never with the length of anyone's filters. Rebuilt from the sockets' attachments and the
 * stored filters whenever the object wakes (see `subscribers.ts`).
 */
export class SubscriberIndex {
  readonly #byId = new Map<string, IndexedSubscriber>();
  readonly #byHost = new Map<string, Set<IndexedSubscriber>>();
  readonly #byJob = new Map<string, Set<IndexedSubscriber>>();
  readonly #byTag = new Map<string, Set<IndexedSubscriber>>();
  readonly #unfiled = new Set<IndexedSubscriber>();
  #event = 0;

  get size(): number {
    return this.#byId.size;
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  add(ws: WebSocket, id: string, filter: EventFilter): void {
    this.remove(id);
    const s: IndexedSubscriber = { ws, id, filter: compile(filter), mark: 0 };
    this.#byId.set(id, s);
    this.#file(s, (bucket, key) => {
      const set = bucket.get(key);
      if (set) set.add(s);
      else bucket.set(key, new Set([s]));
    });
  }

  remove(id: string): void {
    const s = this.#byId.get(id);
    if (!s) return;
    this.#byId.delete(id);
    this.#file(s, (bucket, key) => {
      const set = bucket.get(key);
      set?.delete(s);
      if (set?.size === 0) bucket.delete(key);
    });
  }

  /** Calls `visit` for each subscriber filed under `s`'s index key(s), or files it with the unfiled. */
  #file(s: IndexedSubscriber, visit: (bucket: Map<string, Set<IndexedSubscriber>>, key: string) => void): void {
    const [bucket, keys] = s.filter.hosts
      ? [this.#byHost, s.filter.hosts]
      : s.filter.jobs
        ? [this.#byJob, s.filter.jobs]
        : s.filter.tags
          ? [this.#byTag, s.filter.tags]
          : [null, null];
    if (bucket === null) {
      if (this.#byId.has(s.id)) this.#unfiled.add(s);
      else this.#unfiled.delete(s);
      return;
    }
    for (const key of keys) visit(bucket, key);
  }

  /** The subscribers whose filters match `event`, each once. */
  matching(event: FleetEventInput): IndexedSubscriber[] {
    const mark = ++this.#event;
    const out: IndexedSubscriber[] = [];
    const take = (set: Set<IndexedSubscriber> | undefined) => {
      if (!set) return;
      for (const s of set) {
        if (s.mark === mark) continue;
        s.mark = mark;
        if (matchesCompiled(s.filter, event)) out.push(s);
      }
    };
    if (event.host_id !== undefined) take(this.#byHost.get(event.host_id));
    if (event.job_id !== undefined) take(this.#byJob.get(event.job_id));
    for (const tag of event.tags ?? []) take(this.#byTag.get(tag));
    take(this.#unfiled);
    return out;
  }
}
