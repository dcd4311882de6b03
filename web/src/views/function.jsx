// One function: header and tabs (code and deploy, test, deployments, settings, secrets, routes, executions).
import { api, functionUrl } from "../api.js";
import { ConfirmButton, ErrorBanner, Loading, StatusBadge, Tabs, useAction, useAsync } from "../components.jsx";
import { navigate } from "../router.js";
import { CodeTab } from "./function-code.jsx";
import { DeploymentsTab, ExecutionsTab } from "./function-history.jsx";
import { RoutesTab, SecretsTab, SettingsTab } from "./function-settings.jsx";
import { TestTab } from "./function-test.jsx";

const TABS = [
  { id: "code", label: "Code" },
  { id: "test", label: "Test" },
  { id: "deployments", label: "Deployments" },
  { id: "settings", label: "Settings" },
  { id: "secrets", label: "Secrets" },
  { id: "routes", label: "Routes" },
  { id: "executions", label: "Executions" },
];

const TAB_VIEWS = {
  code: CodeTab,
  test: TestTab,
  deployments: DeploymentsTab,
  settings: SettingsTab,
  secrets: SecretsTab,
  routes: RoutesTab,
  executions: ExecutionsTab,
};

export function FunctionPage({ params, query }) {
  const { data: fn, error, reload, setData } = useAsync(() => api.get(`functions/${params.id}`), [params.id]);
  const remove = useAction();
  const tab = TAB_VIEWS[query.tab] ? query.tab : "code";
  if (error) return <ErrorBanner error={error} />;
  if (!fn) return <Loading />;
  const View = TAB_VIEWS[tab];
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
            {fn.runtime} · {fn.entrypoint} · invoke at <a href={functionUrl(fn.name)} target="_blank" rel="noopener noreferrer"><code>{functionUrl(fn.name)}</code></a>
          </p>
        </div>
        <ConfirmButton
          label="Delete function"
          question={`Delete ${fn.name}? Its versions, secrets, routes and execution history are removed for good.`}
          onConfirm={() =>
            remove.run(async () => {
              await api.del(`functions/${fn.id}`);
              navigate("/functions");
            })
          }
        />
      </header>
      <ErrorBanner error={remove.error} />
      <Tabs tabs={TABS} active={tab} onChange={(t) => navigate(`/functions/${fn.id}?tab=${t}`)} />
      <div class="tab-body">
        <View fn={fn} reload={reload} setFn={setData} />
      </div>
    </section>
  );
}
