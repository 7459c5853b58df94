import { useCallback, useEffect, useRef, useState } from "react";
import { api, unwrap } from "../api/client";
import type { HostStatus, HostView } from "../api/types";
import { Badge, ErrorNote, Time } from "../components/ui";
import { VirtualTable } from "../components/virtual-list";
import { useFleetEvents, useRefetchGeneration } from "../live/hooks";
import { Link, useQueryParams } from "../router";

const PAGE = 200;
const ROW_HEIGHT = 36;

interface Listing {
  items: HostView[];
  cursor: string | null;
  loading: boolean;
  error: unknown;
}

export function Hosts() {
  const [params, setParams] = useQueryParams();
  const status = (params.get("status") ?? "") as HostStatus | "";
  const tags = params.get("tags") ?? "";
  const matchAll = params.get("match") === "all";
  const q = params.get("q") ?? "";
  const generation = useRefetchGeneration();
  const [list, setList] = useState<Listing>({ items: [], cursor: null, loading: true, error: undefined });
  const request = useRef(0);

  const query = useCallback(
    (cursor?: string) => ({
      limit: PAGE,
      cursor,
      status: status || undefined,
      tags: tags || undefined,
      match: tags && matchAll ? ("all" as const) : undefined,
      q: q || undefined,
    }),
    [status, tags, matchAll, q],
  );

  // A new filter (or missed events): the first page again.
  // biome-ignore lint/correctness/useExhaustiveDependencies: generation is the reload trigger
  useEffect(() => {
    const id = ++request.current;
    setList({ items: [], cursor: null, loading: true, error: undefined });
    unwrap(api.GET("/api/hosts", { params: { query: query() } })).then(
      (page) => id === request.current && setList({ items: page.items, cursor: page.next_cursor, loading: false, error: undefined }),
      (error) => id === request.current && setList({ items: [], cursor: null, loading: false, error }),
    );
  }, [query, generation]);

  const more = useCallback(() => {
    if (list.loading || !list.cursor) return;
    const id = request.current;
    setList((l) => ({ ...l, loading: true }));
    unwrap(api.GET("/api/hosts", { params: { query: query(list.cursor) } })).then(
      (page) =>
        id === request.current &&
        setList((l) => ({ items: [...l.items, ...page.items], cursor: page.next_cursor, loading: false, error: undefined })),
      (error) => id === request.current && setList((l) => ({ ...l, loading: false, error })),
    );
  }, [list.loading, list.cursor, query]);

  useFleetEvents((e) => {
    if ((e.type !== "host.online" && e.type !== "host.offline") || !e.host_id) return;
    const next: HostStatus = e.type === "host.online" ? "online" : "offline";
    setList((l) => {
      const i = l.items.findIndex((h) => h.host_id === e.host_id);
      if (i < 0 || l.items[i]!.status === "revoked") return l;
      // A host that no longer matches the status filter leaves the table.
      if (status && status !== next) return { ...l, items: l.items.filter((_, j) => j !== i) };
      const items = l.items.slice();
      items[i] = { ...items[i]!, status: next, last_seen_at: e.at, ...(next === "online" ? { connected_at: e.at } : {}) };
      return { ...l, items };
    });
  });

  const [text, setText] = useState(q);
  useEffect(() => {
    if (text === q) return;
    const t = setTimeout(() => setParams({ q: text.trim() || null }), 250);
    return () => clearTimeout(t);
  }, [text, q, setParams]);

  return (
    <>
      <h1>Hosts</h1>
      <form className="filters" aria-label="Host filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select value={status} onChange={(e) => setParams({ status: e.target.value || null })}>
            <option value="">any</option>
            <option value="online">online</option>
            <option value="offline">offline</option>
            <option value="revoked">revoked</option>
          </select>
        </label>
        <label>
          Tags
          <input
            defaultValue={tags}
            key={tags}
            placeholder="web,prod"
            onBlur={(e) => setParams({ tags: e.target.value.replace(/\s+/g, "") || null })}
            onKeyDown={(e) => e.key === "Enter" && setParams({ tags: e.currentTarget.value.replace(/\s+/g, "") || null })}
          />
        </label>
        <label>
          Match
          <select value={matchAll ? "all" : "any"} onChange={(e) => setParams({ match: e.target.value === "all" ? "all" : null })}>
            <option value="any">any tag</option>
            <option value="all">all tags</option>
          </select>
        </label>
        <label>
          Search
          <input type="search" value={text} placeholder="hostname or id" onChange={(e) => setText(e.target.value)} />
        </label>
      </form>
      <ErrorNote error={list.error} />
      <VirtualTable
        label="Hosts"
        items={list.items}
        rowHeight={ROW_HEIGHT}
        height={640}
        columns={6}
        onEndReached={more}
        head={
          <tr>
            <th>Host</th>
            <th>Status</th>
            <th>Last seen</th>
            <th className="wide-only">Tags</th>
            <th className="wide-only">Agent</th>
            <th className="num">Queue</th>
          </tr>
        }
        renderRow={(h, i) => (
          <tr key={h.host_id} data-host-id={h.host_id} aria-rowindex={i + 2} style={{ height: ROW_HEIGHT }}>
            <td>
              <Link href={`/hosts/${h.host_id}`}>{h.hostname}</Link>
            </td>
            <td data-testid="host-status">
              <Badge value={h.status} />
            </td>
            <td>
              <Time at={h.last_seen_at} />
            </td>
            <td className="tags wide-only">{h.tags.join(", ")}</td>
            <td className="wide-only">{h.agent?.agent_version ?? "—"}</td>
            <td className="num" data-testid="host-queue-depth">
              {h.queue_depth ?? "—"}
            </td>
          </tr>
        )}
      />
      <p className="muted" aria-live="polite">
        {list.loading
          ? "loading…"
          : `${list.items.length} host${list.items.length === 1 ? "" : "s"}${list.cursor ? ", more on scroll" : ""}`}
      </p>
    </>
  );
}
