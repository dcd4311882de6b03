// Code tab: the editor, the dependencies box, Deploy, the build log streamed over SSE, and (beside the
// editor on wide screens, under it otherwise) the Test panel. The state is the page's (function-workspace).
import { useEffect, useRef } from "preact/hooks";
import { lazy } from "../components/lazy.jsx";
import { ErrorBanner, Field, Loading, Notice, StatusBadge } from "../components/ui.jsx";
import { MOD, TestPanel } from "../components/test-panel.jsx";
import { languageOf } from "./function-workspace.jsx";

// CodeMirror is most of the dashboard's weight: its own chunk, fetched when a Code tab first opens.
export const CodeEditor = lazy(() => import("../components/editor.jsx"), "CodeEditor", "editor");

export function CodeTab({ fn, ws }) {
  const language = languageOf(fn);
  const s = ws.state;
  if (s.code === null) return <Loading what="Loading the source" />;
  const building = Boolean(s.build && !s.build.done);
  const depsHelp =
    language === "python"
      ? "requirements.txt lines, e.g. requests==2.32.3"
      : "package specs such as lodash@4.17.21, or a whole package.json";
  return (
    <div class="fn-code-layout">
      <div class="code-tab">
        <ErrorBanner error={s.loadError} />
        <CodeEditor
          value={s.code}
          revision={s.revision}
          language={language}
          onChange={(code) => ws.set({ code })}
          onSubmit={ws.send}
          label={`${fn.entrypoint} source`}
        />
        <Field label="Dependencies" help={depsHelp}>
          <textarea
            name="dependencies"
            rows="3"
            value={s.deps}
            onInput={(e) => ws.set({ deps: e.target.value })}
            placeholder={language === "python" ? "requests==2.32.3" : "lodash@4.17.21"}
          />
        </Field>
        <div class="actions left">
          <button
            class="primary"
            onClick={ws.deploy}
            disabled={s.deploying || building}
            aria-keyshortcuts="Control+S Meta+S"
          >
            Deploy
          </button>
          <kbd class="shortcut">{MOD}+S</kbd>
          {ws.dirty && (
            <span class="unsaved" data-testid="unsaved">
              ● Undeployed changes
            </span>
          )}
          {building && <span class="muted">Building…</span>}
        </div>
        <ErrorBanner error={s.deployError} />
        {s.build && <BuildLog build={s.build} />}
      </div>
      <section class="fn-side-test" aria-label="Test panel">
        <h2>Test</h2>
        <TestPanel fn={fn} ws={ws} />
      </section>
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
        <Notice kind="error">
          The build failed: {dep.error_message || "see the log below"}. The previous version keeps serving; every
          build's log stays in the Deployments tab.
        </Notice>
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
