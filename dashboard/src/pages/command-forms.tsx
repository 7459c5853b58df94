/** The commands an operator sends to one host: the product page's package operation, system_info, and shell where the agent allows it. */
import { type FormEvent, useState } from "react";
import { api, unwrap } from "../api/client";
import type { CommandRequest, HostView } from "../api/types";
import { ErrorNote, FieldError } from "../components/ui";
import { navigate } from "../router";

type Operation = "install" | "remove" | "update" | "upgrade";

export function CommandForms({ host }: { host: HostView }) {
  const supported = host.agent?.supported_commands;
  const [operation, setOperation] = useState<Operation>("install");
  const [packages, setPackages] = useState("");
  const [yes, setYes] = useState(true);
  const [simulate, setSimulate] = useState(true);
  const [script, setScript] = useState("");
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  const send = async (body: CommandRequest) => {
    setBusy(true);
    setError(undefined);
    try {
      const accepted = await unwrap(api.POST("/api/hosts/{host_id}/commands", { params: { path: { host_id: host.host_id } }, body }));
      navigate(`/hosts/${host.host_id}/commands/${accepted.message_id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  const sendPackages = (e: FormEvent) => {
    e.preventDefault();
    const names = packages.split(/[\s,]+/).filter(Boolean);
    void send({ command_type: "package_operation", parameters: { operation, packages: names, options: { yes, simulate } } });
  };

  const shellAllowed = supported?.includes("shell") ?? false;
  return (
    <div className="forms">
      <form onSubmit={sendPackages} aria-label="Package operation" className="form-row">
        <label>
          Operation
          <select value={operation} onChange={(e) => setOperation(e.target.value as Operation)}>
            <option value="install">install</option>
            <option value="remove">remove</option>
            <option value="update">update</option>
            <option value="upgrade">upgrade</option>
          </select>
        </label>
        <label className="grow">
          Packages
          <input
            name="packages"
            value={packages}
            onChange={(e) => setPackages(e.target.value)}
            placeholder="nginx curl"
            aria-describedby="packages-error"
          />
          <FieldError error={error} field="parameters.packages" id="packages-error" />
        </label>
        <label className="check">
          <input type="checkbox" checked={yes} onChange={(e) => setYes(e.target.checked)} /> yes
        </label>
        <label className="check">
          <input type="checkbox" checked={simulate} onChange={(e) => setSimulate(e.target.checked)} /> simulate
        </label>
        <button type="submit" disabled={busy}>
          Send {operation}
        </button>
      </form>
      <div className="form-row">
        <button type="button" disabled={busy} onClick={() => void send({ command_type: "system_info", parameters: {} })}>
          Send system_info
        </button>
      </div>
      {shellAllowed ? (
        <form
          aria-label="Shell"
          className="form-row"
          onSubmit={(e) => {
            e.preventDefault();
            void send({ command_type: "shell", parameters: { script } });
          }}
        >
          <label className="grow">
            Shell script
            <textarea rows={2} value={script} onChange={(e) => setScript(e.target.value)} aria-describedby="script-error" />
            <FieldError error={error} field="parameters.script" id="script-error" />
          </label>
          <button type="submit" disabled={busy || !script}>
            Run shell
          </button>
        </form>
      ) : (
        <p className="muted">Shell: this agent does not allow it (not in its supported commands).</p>
      )}
      <ErrorNote error={error} />
    </div>
  );
}
