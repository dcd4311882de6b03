// A small time-series chart (uPlot): x is unix seconds over a fixed window, each series one line on a
// y axis that starts at 0 and carries its unit. Colours follow the theme; an `empty` text is shown over
// the plot when there is nothing to draw.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { useTheme } from "../theme.js";

const HEIGHT = 180;

function themeColors() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    fg: v("--muted"),
    grid: v("--chart-grid"),
    series: ["--chart-1", "--chart-2", "--chart-3", "--chart-4"].map(v),
  };
}

// y from 0 to a little above the largest value (1 when everything is 0 or missing)
function fromZero(_u, _min, max) {
  return [0, max > 0 ? max * 1.15 : 1];
}

function axis(colors, extra) {
  return {
    stroke: colors.fg,
    grid: { stroke: colors.grid, width: 1 },
    ticks: { stroke: colors.grid, width: 1 },
    font: "11px system-ui, sans-serif",
    labelFont: "11px system-ui, sans-serif",
    ...extra,
  };
}

// series: [{label, scale?}]; axes: [{scale, label, side?}] for y (the first is on the left);
// data: [xs, ...ys]; window_s: the x range ending at `now` (unix seconds).
export function Chart({ title, series, axes, data, now, window_s = 600, empty, testid }) {
  const box = useRef(null);
  const plot = useRef(null);
  const { theme } = useTheme();
  const range = useRef([now - window_s, now]);
  range.current = [now - window_s, now];

  useEffect(() => {
    const colors = themeColors();
    const scales = { x: { time: true, range: () => range.current } };
    for (const a of axes) scales[a.scale] = { range: fromZero };
    const width = () => Math.max(200, box.current.clientWidth - 16);
    plot.current = new uPlot(
      {
        title,
        width: width(),
        height: HEIGHT,
        legend: { live: false },
        cursor: { y: false },
        scales,
        series: [
          {},
          ...series.map((s, i) => ({
            label: s.label,
            scale: s.scale || axes[0].scale,
            width: 2,
            stroke: colors.series[i % colors.series.length],
            spanGaps: true,
          })),
        ],
        axes: [
          axis(colors, { space: 60 }),
          ...axes.map((a, i) =>
            axis(colors, {
              scale: a.scale,
              label: a.label,
              side: a.side ?? 3,
              size: 48,
              labelSize: 16,
              grid: { stroke: colors.grid, width: 1, show: i === 0 },
            }),
          ),
        ],
      },
      data,
      box.current,
    );
    const observer = new ResizeObserver(() => plot.current.setSize({ width: width(), height: HEIGHT }));
    observer.observe(box.current);
    return () => {
      observer.disconnect();
      plot.current.destroy();
    };
  }, [title, theme, series.map((s) => s.label).join(), axes.map((a) => a.label).join()]);

  useEffect(() => {
    if (plot.current) plot.current.setData(data);
  }, [data, now]);

  return (
    <div class="chart" data-testid={testid} data-points={data[0].length}>
      <div class="chart-plot" ref={box} />
      {empty && <p class="chart-empty">{empty}</p>}
    </div>
  );
}
