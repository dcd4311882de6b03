// Routes: every custom route, and a form to add one for any function.
import { allPages } from "../api.js";
import { ErrorBanner, useAsync } from "../components/ui.jsx";
import { RouteManager } from "../components/route-manager.jsx";

export function RoutesView() {
  const functions = useAsync(() => allPages("functions", "functions"), []);
  return (
    <section>
      <h1>Routes</h1>
      <p class="muted">
        Serve a function at your own path: <code>/hooks/stripe</code> exactly, or everything under <code>/shop/*</code>.
      </p>
      <ErrorBanner error={functions.error} />
      <RouteManager functions={functions.data || []} />
    </section>
  );
}
