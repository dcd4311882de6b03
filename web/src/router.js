// Hash routing (#/functions/abc?tab=code): the server serves one page, deep links still work.
import { useEffect, useState } from "preact/hooks";

export function currentRoute() {
  const hash = window.location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = hash.split("?");
  return { path, params: Object.fromEntries(new URLSearchParams(search)), full: hash };
}

export function navigate(to, { replace = false } = {}) {
  const target = `#${to}`;
  if (replace) window.history.replaceState(null, "", target);
  else window.location.hash = to;
  if (replace) window.dispatchEvent(new HashChangeEvent("hashchange"));
}

export function useRoute() {
  const [route, setRoute] = useState(currentRoute());
  useEffect(() => {
    const update = () => setRoute(currentRoute());
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return route;
}

// Matches "/functions/:id" against a path; returns the params or null.
export function match(pattern, path) {
  const want = pattern.split("/");
  const got = path.split("/");
  if (want.length !== got.length) return null;
  const params = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(":")) params[want[i].slice(1)] = decodeURIComponent(got[i]);
    else if (want[i] !== got[i]) return null;
  }
  return params;
}
