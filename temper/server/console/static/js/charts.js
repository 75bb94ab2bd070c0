// Charts on the vendored Chart.js (assets/vendor, MIT). Pages pass series; this file owns the look.
import { h } from "./ui.js";
import { getLang } from "./i18n.js";

const COLORS = ["#2f5bea", "#e0663a", "#18864b", "#9b51e0", "#c0262d", "#0e9bb0"];

function label(iso, bucket) {
  const d = new Date(iso);
  const loc = getLang() === "zh" ? "zh-CN" : "en-US";
  if (bucket === "day") return d.toLocaleDateString(loc, { month: "short", day: "numeric" });
  return d.toLocaleTimeString(loc, { hour: "2-digit", minute: "2-digit" }) +
    (bucket === "hour" && d.getHours() === 0 ? " " + d.toLocaleDateString(loc, { month: "numeric", day: "numeric" }) : "");
}

/** Dots on short series, and on a value with no neighbours (a lone request in an hour of minutes), else none. */
function radius(c, n) {
  const d = c.dataset.data;
  const i = c.dataIndex;
  const lone = d[i] !== null && d[i] !== undefined && (d[i - 1] === null || d[i - 1] === undefined) && (d[i + 1] === null || d[i + 1] === undefined);
  return lone ? 3 : n > 60 ? 0 : 2;
}

/**
 * A time-series chart. `points` are API buckets ({t, ...}); `series` is
 * [{label, value: (point) => number|null, axis?: "y"|"y2", type?: "bar"|"line", fill?: bool}].
 */
export function timeChart(points, series, { bucket = "hour", title } = {}) {
  const canvas = h("canvas", { role: "img", "aria-label": title || "" });
  const box = h("div", { class: "chart-box" }, canvas);
  const usesY2 = series.some((s) => s.axis === "y2");
  const draw = () => {
    if (!window.Chart) return setTimeout(draw, 50);
    new window.Chart(canvas, {
      data: {
        labels: points.map((p) => label(p.t, bucket)),
        datasets: series.map((s, i) => ({
          type: s.type || "line", label: s.label, data: points.map(s.value), yAxisID: s.axis || "y",
          borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length] + (s.type === "bar" ? "99" : "22"),
          fill: s.fill ?? s.type !== "bar", tension: 0.25, pointRadius: (c) => radius(c, points.length), spanGaps: true,
        })),
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false, interaction: { mode: "index", intersect: false },
        plugins: { legend: { position: "bottom" }, title: { display: !!title, text: title } },
        scales: {
          x: { ticks: { maxTicksLimit: 12, autoSkip: true } },
          y: { beginAtZero: true, position: "left", ticks: { precision: 0 } },
          ...(usesY2 ? { y2: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } : {}),
        },
      },
    });
  };
  requestAnimationFrame(draw);
  return box;
}
