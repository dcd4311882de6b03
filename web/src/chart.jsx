// A small time-series chart (uPlot): x is unix seconds, each series one line.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const COLORS = ["#2563eb", "#d97706", "#dc2626", "#059669"];

export function Chart({ title, series, data, height = 180 }) {
  const box = useRef(null);
  const plot = useRef(null);

  useEffect(() => {
    const width = Math.max(280, box.current.clientWidth);
    plot.current = new uPlot(
      {
        title,
        width,
        height,
        series: [{}, ...series.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 2 }))],
        axes: [{}, { size: 50 }],
      },
      data,
      box.current,
    );
    const resize = () => plot.current.setSize({ width: Math.max(280, box.current.clientWidth), height });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      plot.current.destroy();
    };
  }, [title, series.join()]);

  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [data]);

  return <div class="chart" ref={box} />;
}
