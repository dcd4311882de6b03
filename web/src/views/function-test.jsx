// The Test tab: the test panel alone (components/test-panel.jsx; the Code tab shows it beside the editor).
import { TestPanel } from "../components/test-panel.jsx";

export function TestTab({ fn, ws }) {
  return <TestPanel fn={fn} ws={ws} />;
}
