// Routes: every custom route, and a form to add one for any function.
import { api } from "../api.js";
import { ErrorBanner, useAsync } from "../components.jsx";
import { RouteManager } from "./function-settings.jsx";

export function RoutesView() {
  const functions = useAsync(() => api.get("functions?limit=500").then((r) => r.functions), []);
  return (
    <section>
      <h1>Routes</h1>
      <p class="muted">Serve a function at your own path: <code>/hooks/stripe</code> exactly, or everything under <code>/shop/*</code>.</p>
      <ErrorBanner error={functions.error} />
      <RouteManager functions={functions.data || []} />
    </section>
  );
}
