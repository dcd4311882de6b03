// Code tab: the editor, the dependencies box, Deploy, and the build log streamed over SSE.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, subscribe } from "../api.js";
import { CodeEditor } from "../editor.jsx";
import { ErrorBanner, Field, Loading, Notice, StatusBadge, useAction } from "../components.jsx";

const TEMPLATES = {
  python: `import json


def handler(event, context):
    # event: method, path, query, headers, body (a string); see the Test tab
    data = json.loads(event["body"]) if event.get("body") else {}
    name = data.get("name") or event["query"].get("name", "world")
    print(f"saying hello to {name}")
    return {"statusCode": 200, "body": {"hello": name}}
`,
  node: `export async function handler(event, context) {
  // event: method, path, query, headers, body (a string); see the Test tab
  const data = event.body ? JSON.parse(event.body) : {};
  const name = data.name || event.query.name || "world";
  console.log(\`saying hello to \${name}\`);
  return { statusCode: 200, body: { hello: name } };
}
`,
};

export function languageOf(fn) {
  return fn.runtime.startsWith("python") ? "python" : "node";
}

export function CodeTab({ fn, reload }) {
  const language = languageOf(fn);
  const [code, setCode] = useState(null);
  const [revision, setRevision] = useState(0); // bumped when the code is replaced from outside the editor
  const [deps, setDeps] = useState("");
  const [loadError, setLoadError] = useState(null);
  const [build, setBuild] = useState(null); // {deployment, lines (log and phase lines in order), done}
  const closeStream = useRef(null);
  const deploy = useAction();

  useEffect(() => {
    if (!fn.active_deployment_id) {
      setCode(TEMPLATES[language]);
      return;
    }
    api.get(`functions/${fn.id}/source`).then(
      (src) => {
        setCode(src.code);
        setDeps(src.dependencies || "");
        setRevision((r) => r + 1);
      },
      (e) => {
        setLoadError(e);
        setCode(TEMPLATES[language]);
      },
    );
  }, [fn.id]);

  useEffect(() => () => closeStream.current && closeStream.current(), []);

  const follow = (deployment) => {
    if (closeStream.current) closeStream.current();
    setBuild({ deployment, lines: [], done: false });
    const finish = (record) => {
      setBuild((b) => ({ ...b, deployment: record, done: true }));
      closeStream.current();
      reload();
    };
    closeStream.current = subscribe(`deployments/${deployment.id}/stream`, {
      log: (l) => setBuild((b) => ({ ...b, lines: [...b.lines, l.line] })),
      phase: (p) => setBuild((b) => ({ ...b, lines: [...b.lines, `» ${p.phase || p.name}`] })),
      succeeded: finish,
      failed: finish,
      superseded: finish,
    });
  };

  const submit = () =>
    deploy.run(async () => {
      const body = { code, filename: fn.entrypoint };
      if (deps.trim()) body.dependencies = deps;
      follow(await api.post(`functions/${fn.id}/deploy-inline`, body));
    });

  if (code === null) return <Loading what="Loading the source" />;
  const depsHelp =
    language === "python"
      ? "requirements.txt lines, e.g. requests==2.32.3"
      : "package specs such as lodash@4.17.21, or a whole package.json";
  return (
    <div class="code-tab">
      <ErrorBanner error={loadError} />
      <CodeEditor value={code} revision={revision} language={language} onChange={setCode} label={`${fn.entrypoint} source`} />
      <Field label="Dependencies" help={depsHelp}>
        <textarea name="dependencies" rows="3" value={deps} onInput={(e) => setDeps(e.target.value)}
          placeholder={language === "python" ? "requests==2.32.3" : "lodash@4.17.21"} />
      </Field>
      <div class="actions left">
        <button class="primary" onClick={submit} disabled={deploy.busy || (build && !build.done)}>
          Deploy
        </button>
        {build && !build.done && <span class="muted">Building…</span>}
      </div>
      <ErrorBanner error={deploy.error} />
      {build && <BuildLog build={build} />}
    </div>
  );
}

function BuildLog({ build }) {
  const box = useRef(null);
  useEffect(() => {
    if (box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [build.lines.length]);
  const dep = build.deployment;
  return (
    <div class="build">
      <h3>
        Build v{dep.version} <StatusBadge status={build.done ? dep.status : "building"} />
        {build.done && dep.duration_ms !== null && <span class="muted"> in {dep.duration_ms} ms</span>}
      </h3>
      {build.done && dep.status === "failed" && (
        <Notice kind="error">The build failed: {dep.error_message || "see the log below"}</Notice>
      )}
      {build.done && dep.status === "succeeded" && <Notice kind="ok">Deployed. Try it in the Test tab.</Notice>}
      {build.done && dep.status === "superseded" && (
        <Notice kind="warn">Built, but a newer deployment was activated first; this one is kept in History.</Notice>
      )}
      <pre class="log" ref={box} aria-label="Build log" aria-live="polite">
        {build.lines.join("\n")}
      </pre>
    </div>
  );
}
