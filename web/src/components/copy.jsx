// Copy a value to the clipboard: navigator.clipboard where the page may use it (HTTPS or localhost),
// else the older execCommand("copy") on a hidden text box; if both fail, the value is shown selected so
// the user can copy it by hand. The button says "Copied" for a moment.
import { useEffect, useRef, useState } from "preact/hooks";

const CONFIRM_MS = 2000;

// Put `text` in a hidden text box next to `near` (inside an open dialog the rest of the page is inert)
// and copy the selection.
function copyBySelection(text, near) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "copy-offscreen";
  (near || document.body).appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

export async function copyText(text, near) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // refused (permissions, focus): try the older way below
    }
  }
  return copyBySelection(text, near);
}

// A "Copy" button for `text`; `what` names it for screen readers ("Copy id of greeter").
export function CopyValue({ text, what, label = "Copy" }) {
  const [state, setState] = useState("idle"); // idle | copied | manual
  const box = useRef(null);
  const manual = useRef(null);
  useEffect(() => {
    if (state !== "copied") return undefined;
    const timer = setTimeout(() => setState("idle"), CONFIRM_MS);
    return () => clearTimeout(timer);
  }, [state]);
  useEffect(() => {
    if (state === "manual" && manual.current) manual.current.select();
  }, [state]);
  const copy = async (e) => {
    e.stopPropagation();
    setState((await copyText(text, box.current)) ? "copied" : "manual");
  };
  return (
    <span class="copy" ref={box}>
      <button
        type="button"
        class={state === "copied" ? "copy-btn copied" : "copy-btn"}
        onClick={copy}
        aria-label={state === "copied" ? `Copied ${what}` : `${label} ${what}`}
      >
        {state === "copied" ? "Copied" : label}
      </button>
      {state === "manual" && (
        <input
          ref={manual}
          class="copy-manual"
          readOnly
          value={text}
          aria-label={`${what}: press Ctrl+C to copy`}
          onClick={(e) => e.stopPropagation()}
        />
      )}
      <span class="copy-live" aria-live="polite">
        {state === "copied" ? "Copied" : ""}
      </span>
    </span>
  );
}
