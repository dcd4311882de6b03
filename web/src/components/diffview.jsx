// Side-by-side diff of two versions' files (the JSON of GET /functions/{id}/diff).
import { diffLines } from "diff";

function rows(before, after) {
  const out = [];
  let left = 1;
  let right = 1;
  const pending = []; // removed lines waiting to pair with added ones
  const flush = () => {
    while (pending.length) out.push({ l: pending.shift(), r: null });
  };
  for (const part of diffLines(before, after)) {
    const lines = part.value.replace(/\n$/, "").split("\n");
    if (part.removed) {
      for (const text of lines) pending.push({ n: left++, text, kind: "del" });
    } else if (part.added) {
      for (const text of lines) {
        const r = { n: right++, text, kind: "add" };
        out.push({ l: pending.shift() || null, r });
      }
      flush();
    } else {
      flush();
      for (const text of lines) out.push({ l: { n: left++, text, kind: "" }, r: { n: right++, text, kind: "" } });
    }
  }
  flush();
  return out;
}

function Cell({ line }) {
  if (!line)
    return (
      <>
        <td class="ln" />
        <td class="code empty" />
      </>
    );
  return (
    <>
      <td class="ln">{line.n}</td>
      <td class={`code ${line.kind}`}>{line.text}</td>
    </>
  );
}

export function SideBySide({ files }) {
  return (
    <div class="diff">
      {files.map((f) => (
        <div key={f.path} class="diff-file">
          <h3>
            {f.path} <span class="good">+{f.added}</span> <span class="bad">−{f.removed}</span>
          </h3>
          <table class="diff-table" aria-label={`diff of ${f.path}`}>
            <tbody>
              {rows(f.before, f.after).map((row, i) => (
                <tr key={i}>
                  <Cell line={row.l} />
                  <Cell line={row.r} />
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ))}
    </div>
  );
}
