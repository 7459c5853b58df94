/**
 * Webhook receivers (admin). The secret is write-only: the API answers `has_secret`, so the page
 * shows "secret set" and never a value; editing without typing a new one keeps the stored secret.
 */
import { type FormEvent, useState } from "react";
import { api, unwrap } from "../api/client";
import type { AlertReceiver } from "../api/types";
import { EditableList, type FormProps } from "../components/editable-list";
import { ErrorNote, FieldError, Time } from "../components/ui";

export function AlertReceivers() {
  return (
    <EditableList<AlertReceiver>
      title="Receivers"
      noun="receiver"
      rowAttribute="receiver-id"
      load={() => unwrap(api.GET("/api/alert-receivers"))}
      idOf={(r) => r.receiver_id}
      nameOf={(r) => r.name}
      remove={(id) => unwrap(api.DELETE("/api/alert-receivers/{receiver_id}", { params: { path: { receiver_id: id } } }))}
      head={
        <>
          <th>Name</th>
          <th>URL</th>
          <th>Secret</th>
          <th>Enabled</th>
          <th>Updated</th>
        </>
      }
      cells={(r) => (
        <>
          <td>{r.name}</td>
          <td>
            <code>{r.url}</code>
          </td>
          <td>{r.has_secret ? "secret set" : "none"}</td>
          <td>{r.enabled ? "yes" : "no"}</td>
          <td>
            <Time at={r.updated_at} />
          </td>
        </>
      )}
      form={ReceiverForm}
      empty="No receivers: alerts show here and on the event stream only."
    />
  );
}

function ReceiverForm({ item: receiver, onDone, onCancel }: FormProps<AlertReceiver>) {
  const [name, setName] = useState(receiver?.name ?? "");
  const [url, setUrl] = useState(receiver?.url ?? "https://");
  const [secret, setSecret] = useState("");
  const [enabled, setEnabled] = useState(receiver?.enabled ?? true);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      if (receiver) {
        await unwrap(
          api.PUT("/api/alert-receivers/{receiver_id}", {
            params: { path: { receiver_id: receiver.receiver_id } },
            body: { name, url, enabled, ...(secret ? { secret } : {}) },
          }),
        );
      } else {
        await unwrap(api.POST("/api/alert-receivers", { body: { name, url, secret, enabled } }));
      }
      setSecret("");
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} aria-label={receiver ? "Edit receiver" : "New receiver"} className="forms">
      <div className="form-row">
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} aria-describedby="receiver-name-error" />
          <FieldError error={error} field="name" id="receiver-name-error" />
        </label>
        <label className="grow">
          URL
          <input value={url} onChange={(e) => setUrl(e.target.value)} aria-describedby="receiver-url-error" />
          <FieldError error={error} field="url" id="receiver-url-error" />
        </label>
        <label>
          {receiver ? "New secret (empty: keep)" : "Secret"}
          <input
            type="password"
            autoComplete="new-password"
            value={secret}
            onChange={(e) => setSecret(e.target.value)}
            placeholder={receiver ? "secret set" : "16–256 characters"}
            aria-describedby="receiver-secret-error"
          />
          <FieldError error={error} field="secret" id="receiver-secret-error" />
        </label>
        <label className="check">
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> enabled
        </label>
      </div>
      <div className="form-row">
        <button type="submit" disabled={busy}>
          {receiver ? "Save receiver" : "Create receiver"}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <ErrorNote error={error} />
    </form>
  );
}
