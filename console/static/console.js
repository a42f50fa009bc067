// 工作台 charts: data comes from a JSON block on the page (no inline script: CSP script-src 'self').
// The chart container gets data-ready="1" once ECharts has finished rendering; animations are
// off when the browser prefers reduced motion (the browser tests emulate it).
(function () {
  "use strict";
  function money(v) {
    return "¥" + Number(v).toLocaleString("zh-CN", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function barChart(el) {
    var data = JSON.parse(document.getElementById(el.dataset.chart).textContent);
    var still = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    var chart = window.echarts.init(el, null, { renderer: "canvas" });
    chart.on("finished", function () {
      el.dataset.ready = "1";
      if (document.querySelectorAll("[data-chart][data-ready='0']").length === 0) {
        document.documentElement.dataset.chartReady = "1";
      }
    });
    var category = { type: "category", data: data.labels, inverse: !!data.horizontal };
    var value = { type: "value", axisLabel: { formatter: function (v) { return v >= 10000 ? v / 10000 + "万" : v; } } };
    chart.setOption({
      animation: !still,
      grid: { left: data.horizontal ? 180 : 70, right: 20, top: 20, bottom: 40 },
      tooltip: { trigger: "axis", valueFormatter: money },
      xAxis: data.horizontal ? value : category,
      yAxis: data.horizontal ? category : value,
      series: [{ name: data.name, type: "bar", data: data.values, itemStyle: { color: "#2f6fed" } }],
    });
    window.addEventListener("resize", function () { chart.resize(); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-chart]").forEach(barChart);
  });
})();
