import { useEffect, useState, useSyncExternalStore } from "react";
import type { Role } from "./api/types";
import { getCaller, getToken, onAuthChange, signIn, signOut } from "./auth";
import { events } from "./live/event-stream";
import { useConnectionStatus } from "./live/hooks";
import { Alerts } from "./pages/alerts";
import { Audit } from "./pages/audit";
import { CommandPage } from "./pages/command-view";
import { HostDetail } from "./pages/host-detail";
import { Hosts } from "./pages/hosts";
import { JobDetail } from "./pages/job-detail";
import { Jobs } from "./pages/jobs";
import { NotFound } from "./pages/not-found";
import { Overview } from "./pages/overview";
import { SignIn } from "./pages/sign-in";
import { Link, match, useLocation } from "./router";

const NAV = [
  { href: "/", label: "Overview" },
  { href: "/hosts", label: "Hosts" },
  { href: "/jobs", label: "Jobs" },
  { href: "/alerts", label: "Alerts" },
  { href: "/audit", label: "Audit" },
];

const STATUS_TEXT = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  refetching: "missed events, reloading",
  stopped: "not connected",
} as const;

function ConnectionIndicator() {
  const status = useConnectionStatus();
  return (
    <output className={`conn conn-${status}`} data-testid="connection" data-status={status} aria-live="polite">
      <span className="dot" aria-hidden="true" />
      {STATUS_TEXT[status]}
    </output>
  );
}

function Page({ path, role }: { path: string; role: Role }) {
  if (path === "/") return <Overview />;
  if (path === "/hosts") return <Hosts />;
  const command = match("/hosts/:host_id/commands/:message_id", path);
  if (command) return <CommandPage key={command.message_id} hostId={command.host_id!} messageId={command.message_id!} role={role} />;
  const host = match("/hosts/:host_id", path);
  if (host) return <HostDetail key={host.host_id} hostId={host.host_id!} role={role} />;
  if (path === "/jobs") return <Jobs role={role} />;
  const job = match("/jobs/:job_id", path);
  if (job) return <JobDetail key={job.job_id} jobId={job.job_id!} role={role} />;
  if (path === "/alerts") return <Alerts role={role} />;
  if (path === "/audit") return <Audit role={role} />;
  return <NotFound path={path} />;
}

export function App() {
  const caller = useSyncExternalStore(onAuthChange, getCaller);
  const [checking, setChecking] = useState(true);
  const { path } = useLocation();

  // A token from earlier in this tab, or none: behind Cloudflare Access the relay knows us already.
  useEffect(() => {
    void signIn(getToken()).finally(() => setChecking(false));
  }, []);

  useEffect(() => {
    if (!caller) return;
    events.start(getToken());
    return () => events.stop();
  }, [caller]);

  if (!caller) return checking ? <p className="muted center">…</p> : <SignIn />;
  return (
    <div className="shell">
      <header className="top">
        <span className="brand">Fleet relay</span>
        <nav aria-label="Main">
          {NAV.map((n) => (
            <Link key={n.href} href={n.href} aria-current={(n.href === "/" ? path === "/" : path.startsWith(n.href)) ? "page" : undefined}>
              {n.label}
            </Link>
          ))}
        </nav>
        <ConnectionIndicator />
        <span className="who" data-testid="role">
          {caller.sub} · {caller.role}
        </span>
        {getToken() && (
          <button type="button" onClick={() => signOut()}>
            Sign out
          </button>
        )}
      </header>
      <main>
        <Page path={path} role={caller.role} />
      </main>
    </div>
  );
}
