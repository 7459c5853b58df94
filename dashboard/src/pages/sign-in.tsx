import { type FormEvent, useState } from "react";
import { lastSignOutReason, signIn } from "../auth";

export function SignIn() {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(lastSignOutReason());
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(await signIn(token.trim()));
    setBusy(false);
  };
  return (
    <main className="sign-in">
      <h1>Fleet relay</h1>
      <form onSubmit={submit} className="card">
        <label htmlFor="token">API token</label>
        <p className="muted">
          Get one on the relay's machine with <code>npm run token -- --role operator</code> (or <code>viewer</code>, <code>admin</code>
          ). It is kept in this tab only.
        </p>
        <textarea
          id="token"
          name="token"
          rows={4}
          value={token}
          onChange={(e) => setToken(e.target.value)}
          // A token is one line: Enter signs in, as in a single-line field (Shift+Enter still breaks a line).
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) {
              e.preventDefault();
              e.currentTarget.form?.requestSubmit();
            }
          }}
          autoComplete="off"
          spellCheck={false}
          required
        />
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy || !token.trim()}>
          Sign in
        </button>
      </form>
    </main>
  );
}
