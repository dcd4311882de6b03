// Heavy components loaded on first use: esbuild puts what a dynamic import() reaches into chunks of
// their own (web/build.mjs splits), so the first page load does not carry CodeMirror or jsdiff. While the
// chunk loads the component shows "Loading…"; a chunk that cannot load (the dashboard was rebuilt and its
// old chunks are gone) shows an error that says to reload.
import { useEffect, useState } from "preact/hooks";
import { ErrorBanner, Loading } from "./ui.jsx";

export function lazy(load, name, what) {
  let component = null;
  let pending = null;
  const fetchChunk = () => {
    pending ??= load().then(
      (module) => (component = module[name]),
      (error) => {
        pending = null; // a later mount tries again
        throw error;
      },
    );
    return pending;
  };

  function Lazy(props) {
    const [, setReady] = useState(component !== null);
    const [error, setError] = useState(null);
    useEffect(() => {
      if (component) {
        setReady(true); // the chunk arrived between this render and its effect (a preload): show it now
        return undefined;
      }
      let live = true;
      fetchChunk().then(
        () => live && setReady(true),
        (e) => live && setError(e),
      );
      return () => {
        live = false;
      };
    }, []);
    if (component) {
      const Component = component;
      return <Component {...props} />;
    }
    if (error) {
      return <ErrorBanner error={{ message: `The ${what} did not load (${error.message}). Reload the page.` }} />;
    }
    return <Loading what={`Loading the ${what}`} />;
  }
  Lazy.preload = () => fetchChunk().catch(() => {});
  return Lazy;
}
