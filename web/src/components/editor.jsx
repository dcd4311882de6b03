// A CodeMirror 6 editor with Python or JavaScript highlighting. The editor owns its text: `value`
// replaces it only when `revision` changes (source loaded), never as an echo of onChange, whose
// delayed re-renders would otherwise fight the typing. Ctrl/Cmd+Enter calls `onSubmit` (CodeMirror
// would insert a blank line); Ctrl/Cmd+S is left to the page (it deploys).
import { javascript } from "@codemirror/lang-javascript";
import { python } from "@codemirror/lang-python";
import { EditorView, basicSetup } from "codemirror";
import { useEffect, useRef } from "preact/hooks";

export function CodeEditor({ value, revision, language, onChange, onSubmit, label = "Code" }) {
  const box = useRef(null);
  const view = useRef(null);
  const changed = useRef(onChange);
  changed.current = onChange;
  const submit = useRef(onSubmit);
  submit.current = onSubmit;

  useEffect(() => {
    view.current = new EditorView({
      doc: value,
      parent: box.current,
      extensions: [
        // before basicSetup: handlers of the same precedence run in order, so this one comes first
        EditorView.domEventHandlers({
          keydown: (event) => {
            if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey) || !submit.current) return false;
            event.preventDefault();
            submit.current();
            return true;
          },
        }),
        basicSetup,
        language === "python" ? python() : javascript(),
        EditorView.contentAttributes.of({ "aria-label": label }),
        EditorView.updateListener.of((u) => u.docChanged && changed.current(u.state.doc.toString())),
      ],
    });
    return () => view.current.destroy();
  }, [language]);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
    }
  }, [revision]);

  return <div class="editor" ref={box} />;
}
