// One function: header and tabs (code and deploy, test, deployments, settings, secrets, routes, KV, cron, webhooks, executions).
// The code, dependencies and Test request live in one working state for the page (function-workspace),
// so tabs and in-app navigation lose nothing; undeployed edits are marked and guarded.
import "../function-page.css";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, functionUrl } from "../api.js";
import {
  ConfirmButton,
  Dialog,
  ErrorBanner,
  Loading,
  StatusBadge,
  Tabs,
  useAction,
  useAsync,
} from "../components/ui.jsx";
import { navigate } from "../router.js";
import { CodeEditor, CodeTab } from "./function-code.jsx";
import { DeploymentsTab, ExecutionsTab } from "./function-history.jsx";
import { RoutesTab, SecretsTab, SettingsTab } from "./function-settings.jsx";
import { TestTab } from "./function-test.jsx";
import { KvTab } from "./function-kv.jsx";
import { CronTab } from "./cron.jsx";
import { WebhooksTab } from "./function-webhooks.jsx";
import { forget, useWorkspace } from "./function-workspace.jsx";

const TABS = [
  { id: "code", label: "Code" },
  { id: "test", label: "Test" },
  { id: "deployments", label: "Deployments" },
  { id: "settings", label: "Settings" },
  { id: "secrets", label: "Secrets" },
  { id: "routes", label: "Routes" },
  { id: "kv", label: "KV" },
  { id: "cron", label: "Cron" },
  { id: "webhooks", label: "Webhooks" },
  { id: "executions", label: "Executions" },
];

const TAB_VIEWS = {
  code: CodeTab,
  test: TestTab,
  deployments: DeploymentsTab,
  settings: SettingsTab,
  secrets: SecretsTab,
  routes: RoutesTab,
  kv: KvTab,
  cron: CronTab,
  webhooks: WebhooksTab,
  executions: ExecutionsTab,
};

export function FunctionPage({ params, query }) {
  const { data: fn, error, reload, setData } = useAsync(() => api.get(`functions/${params.id}`), [params.id]);
  useEffect(() => {
    CodeEditor.preload(); // the editor's chunk loads while the function does
  }, []);
  const tab = TAB_VIEWS[query.tab] ? query.tab : "code";
  if (error) return <ErrorBanner error={error} />;
  if (!fn) return <Loading />;
  return <FunctionWorkspace fn={fn} tab={tab} reload={reload} setFn={setData} />;
}

function FunctionWorkspace({ fn, tab, reload, setFn }) {
  const ws = useWorkspace(fn, reload);
  const remove = useAction();
  const View = TAB_VIEWS[tab];
  const tabs = TABS.map((t) =>
    t.id === "code" && ws.dirty
      ? {
          ...t,
          label: (
            <>
              Code
              <span class="unsaved-dot" aria-hidden="true">
                ●
              </span>
              <span class="sr-only"> (undeployed changes)</span>
            </>
          ),
        }
      : t,
  );
  useShortcuts(fn, tab, ws);
  return (
    <section>
      <header class="page-head">
        <div>
          <a href="#/functions" class="muted">
            ← Functions
          </a>
          <h1>
            {fn.name} <StatusBadge status={fn.status} />
          </h1>
          <p class="muted">
            {fn.runtime} · {fn.entrypoint} · invoke at{" "}
            <a href={functionUrl(fn.name)} target="_blank" rel="noopener noreferrer">
              <code>{functionUrl(fn.name)}</code>
            </a>
          </p>
        </div>
        <ConfirmButton
          label="Delete function"
          question={`Delete ${fn.name}? Its versions, secrets, routes and execution history are removed for good.`}
          onConfirm={() =>
            remove.run(async () => {
              await api.del(`functions/${fn.id}`);
              forget(fn.id);
              navigate("/functions");
            })
          }
        />
      </header>
      <ErrorBanner error={remove.error} />
      <Tabs tabs={tabs} active={tab} onChange={(t) => navigate(`/functions/${fn.id}?tab=${t}`)} />
      <div class="tab-body">
        <View fn={fn} reload={reload} setFn={setFn} ws={ws} />
      </div>
      <LeaveGuard fn={fn} dirty={ws.dirty} />
    </section>
  );
}

// Ctrl/Cmd+S deploys (instead of the browser's "save page"), from any tab; the build log is on the
// Code tab. Ctrl/Cmd+Enter sends the Test request from the Code and Test tabs (the editor maps it too).
function useShortcuts(fn, tab, ws) {
  const current = useRef({ fn, tab, ws });
  current.current = { fn, tab, ws };
  useEffect(() => {
    const onKey = (e) => {
      if (!(e.ctrlKey || e.metaKey) || e.altKey || e.defaultPrevented) return;
      const { fn: f, tab: t, ws: w } = current.current;
      if (e.key.toLowerCase() === "s" && !e.shiftKey) {
        e.preventDefault();
        w.deploy();
        if (t !== "code") navigate(`/functions/${f.id}?tab=code`);
      } else if (e.key === "Enter" && (t === "code" || t === "test")) {
        e.preventDefault();
        w.send();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
}

function isThisPage(fn, to) {
  const [path] = to.split("?");
  const parts = path.split("/");
  return parts.length === 3 && parts[1] === "functions" && [fn.id, fn.name].includes(decodeURIComponent(parts[2]));
}

// While edits are undeployed: the browser asks before the tab closes or reloads, and links inside the
// dashboard ask first (the draft would survive, but orvad still runs the last deployed version).
function LeaveGuard({ fn, dirty }) {
  const [target, setTarget] = useState(null);
  useEffect(() => {
    if (!dirty) return undefined;
    const beforeUnload = (e) => {
      e.preventDefault();
      e.returnValue = "";
    };
    const onClick = (e) => {
      if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      const link = e.target.closest && e.target.closest("a[href^='#']");
      if (!link || link.target === "_blank") return;
      const to = link.getAttribute("href").slice(1);
      if (isThisPage(fn, to)) return;
      e.preventDefault();
      setTarget(to);
    };
    window.addEventListener("beforeunload", beforeUnload);
    document.addEventListener("click", onClick, true);
    return () => {
      window.removeEventListener("beforeunload", beforeUnload);
      document.removeEventListener("click", onClick, true);
    };
  }, [dirty, fn.id]);
  const leave = () => {
    const to = target;
    setTarget(null);
    navigate(to);
  };
  return (
    <Dialog title="Leave with undeployed changes?" open={target !== null} onClose={() => setTarget(null)}>
      <p>
        Your changes to {fn.name} are not deployed: orvad still runs the last deployed version. They stay here as a
        draft while this browser tab is open.
      </p>
      <div class="actions">
        <button onClick={() => setTarget(null)}>Stay</button>
        <button class="primary" onClick={leave}>
          Leave
        </button>
      </div>
    </Dialog>
  );
}
