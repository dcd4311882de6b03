// The dashboard shell: who is logged in, the navigation, and which view the hash names.
import "./style.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, setFunctionsOrigin, setUnauthorizedHandler } from "./api.js";
import { lazy } from "./components/lazy.jsx";
import { ConnectionBanner, ErrorBanner, Loading } from "./components/ui.jsx";
import { currentRoute, match, navigate, useRoute } from "./router.js";
import { setThemeChoice, THEME_CHOICES, useTheme } from "./theme.js";
import { FunctionPage } from "./views/function.jsx";
import { FunctionsView } from "./views/functions.jsx";
import { InvocationsView } from "./views/invocations.jsx";
import { KeysView } from "./views/keys.jsx";
import { LoginView } from "./views/login.jsx";
import { OverviewView } from "./views/overview.jsx";
import { RoutesView } from "./views/routes.jsx";
import { SettingsView } from "./views/settings.jsx";

// Channels are visited rarely: their page is a chunk of its own, loaded on first use
const ChannelsView = lazy(() => import("./views/channels.jsx"), "ChannelsView", "channels page");
const ChannelPage = lazy(() => import("./views/channels.jsx"), "ChannelPage", "channel page");
// ... and so is the assistant's
const AssistantView = lazy(() => import("./views/assistant.jsx"), "AssistantView", "assistant");
// ... and so are traces (issue 23)
const TracesView = lazy(() => import("./views/traces.jsx"), "TracesView", "traces page");
// ... and jobs (issue 23)
const JobsView = lazy(() => import("./views/jobs.jsx"), "JobsView", "jobs page");
// ... and every function's schedules (issue 23)
const SchedulesView = lazy(() => import("./views/cron.jsx"), "SchedulesView", "schedules page");
// ... and the activity feed (issue 24)
const ActivityView = lazy(() => import("./views/activity.jsx"), "ActivityView", "activity page");
// ... and the egress rules (issue 24)
const FirewallView = lazy(() => import("./views/firewall.jsx"), "FirewallView", "firewall page");
// ... and the outbound webhooks (issue 24)
const WebhooksView = lazy(() => import("./views/webhooks.jsx"), "WebhooksView", "webhooks page");
// ... and the cluster's nodes (issue 25)
const ClusterView = lazy(() => import("./views/cluster.jsx"), "ClusterView", "cluster page");

const NAV = [
  ["/", "Overview"],
  ["/functions", "Functions"],
  ["/invocations", "Invocations"],
  ["/traces", "Traces"],
  ["/jobs", "Jobs"],
  ["/schedules", "Schedules"],
  ["/routes", "Routes"],
  ["/channels", "Channels"],
  ["/assistant", "Assistant"],
  ["/activity", "Activity"],
  ["/firewall", "Firewall"],
  ["/webhooks", "Webhooks"],
  ["/cluster", "Cluster"],
  ["/keys", "API keys"],
  ["/settings", "Settings"],
];

const VIEWS = [
  ["/", OverviewView],
  ["/functions", FunctionsView],
  ["/functions/:id", FunctionPage],
  ["/invocations", InvocationsView],
  ["/invocations/:id", InvocationsView],
  ["/traces", TracesView],
  ["/traces/:id", TracesView],
  ["/jobs", JobsView],
  ["/jobs/:id", JobsView],
  ["/schedules", SchedulesView],
  ["/routes", RoutesView],
  ["/channels", ChannelsView],
  ["/channels/:id", ChannelPage],
  ["/assistant", AssistantView],
  ["/assistant/:id", AssistantView],
  ["/activity", ActivityView],
  ["/firewall", FirewallView],
  ["/webhooks", WebhooksView],
  ["/cluster", ClusterView],
  ["/keys", KeysView],
  ["/settings", SettingsView],
];

// orvad's OAuth consent page (not part of this app) sends a browser without a session to
// #/login?next=/oauth/consent?request=...: once logged in, back there (only that same-origin path).
function leaveForConsent(route) {
  const next = route.path === "/login" ? route.params.next || "" : "";
  if (!/^\/oauth\/consent\?request=[A-Za-z0-9_-]+$/.test(next)) return false;
  window.location.assign(next);
  return true;
}

function App() {
  const route = useRoute();
  const [auth, setAuth] = useState({ state: "checking" });
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [route.full]); // a link in the menu was followed: close it

  const check = async () => {
    try {
      const { has_user, functions_url } = await api.get("auth/status");
      setFunctionsOrigin(functions_url);
      if (!has_user) return setAuth({ state: "onboarding" });
      const me = await api.get("auth/me", { quiet401: true });
      if (leaveForConsent(currentRoute())) return;
      setAuth({ state: "in", user: me.user });
    } catch (error) {
      setAuth(error.status === 401 ? { state: "login" } : { state: "failed", error });
    }
  };

  useEffect(() => {
    check();
    // A session that expires mid-use: back to login, then back to this very page.
    setUnauthorizedHandler(() => {
      const here = currentRoute().full;
      setAuth({ state: "login", expired: true });
      if (!here.startsWith("/login")) navigate(`/login?next=${encodeURIComponent(here)}`, { replace: true });
    });
  }, []);

  if (auth.state === "checking") return <Loading what="Connecting to orvad" />;
  if (auth.state === "failed") return <ErrorBanner error={auth.error} />;
  if (auth.state !== "in") {
    return (
      <LoginView
        onboarding={auth.state === "onboarding"}
        expired={auth.expired}
        onDone={(user) => {
          setAuth({ state: "in", user });
          if (leaveForConsent(route)) return;
          const next = route.path === "/login" ? route.params.next || "/" : route.full;
          navigate(next, { replace: true });
        }}
      />
    );
  }

  const logout = async () => {
    try {
      await api.post("auth/logout");
    } finally {
      setAuth({ state: "login" });
      navigate("/", { replace: true });
    }
  };

  let view = (
    <p>
      No such page. <a href="#/">Go to the overview</a>.
    </p>
  );
  for (const [pattern, View] of VIEWS) {
    const params = match(pattern, route.path === "/login" ? "/" : route.path);
    if (params) {
      view = <View params={params} query={route.params} />;
      break;
    }
  }
  const section = "/" + route.path.split("/")[1];
  const here = (NAV.find(([to]) => to === section) || [null, ""])[1];
  return (
    <div class="shell">
      <nav
        class={menuOpen ? "sidebar open" : "sidebar"}
        aria-label="Main"
        onKeyDown={(e) => e.key === "Escape" && setMenuOpen(false)}
      >
        <div class="bar">
          <div class="brand">Orva</div>
          <span class="here" aria-hidden="true">
            {here}
          </span>
          <button
            class="menu-button"
            type="button"
            aria-expanded={menuOpen ? "true" : "false"}
            aria-controls="nav-menu"
            onClick={() => setMenuOpen(!menuOpen)}
          >
            {menuOpen ? "Close" : "Menu"}
          </button>
        </div>
        <div class="menu" id="nav-menu">
          <ul>
            {NAV.map(([to, label]) => (
              <li key={to}>
                <a
                  href={`#${to}`}
                  class={section === to ? "active" : ""}
                  aria-current={section === to ? "page" : undefined}
                >
                  {label}
                </a>
              </li>
            ))}
          </ul>
          <ThemePicker />
          <div class="user">
            <span class="muted">{auth.user.username}</span>
            <button class="link" onClick={logout}>
              Log out
            </button>
          </div>
        </div>
      </nav>
      <main class="content">
        <ConnectionBanner />
        {view}
      </main>
    </div>
  );
}

// Light, dark, or whatever the system prefers (saved in this browser).
function ThemePicker() {
  const { choice } = useTheme();
  const names = { system: "System", light: "Light", dark: "Dark" };
  return (
    <label class="theme-pick">
      <span>Theme</span>
      <select name="theme" value={choice} onChange={(e) => setThemeChoice(e.target.value)}>
        {THEME_CHOICES.map((c) => (
          <option key={c} value={c}>
            {names[c]}
          </option>
        ))}
      </select>
    </label>
  );
}

render(<App />, document.getElementById("app"));
