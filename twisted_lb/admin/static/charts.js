/* The manager's live charts: per member, requests/s and errors/s (left axis)
   and the p50/p99 upstream time in ms (right axis) over the last 15 minutes,
   from GET api/series (twisted_lb.admin.series), redrawn every 3 s with uPlot. */
(function () {
  "use strict";
  var charts = {};
  var options = function (width) {
    return {
      width: width, height: 150, legend: {live: false},
      scales: {x: {time: true}, r: {auto: true, range: function (u, min, max) { return [0, Math.max(1, max)]; }},
               ms: {auto: true, range: function (u, min, max) { return [0, Math.max(1, max || 1)]; }}},
      series: [
        {},
        {label: "req/s", stroke: "#2a7a3a", width: 2, scale: "r"},
        {label: "errors/s", stroke: "#c62828", width: 2, scale: "r"},
        {label: "p50 ms", stroke: "#3060c0", width: 1, scale: "ms", spanGaps: false, points: {show: true, size: 4}},
        {label: "p99 ms", stroke: "#9040b0", width: 1, dash: [4, 3], scale: "ms", spanGaps: false, points: {show: true, size: 4}}
      ],
      axes: [{}, {scale: "r", size: 40}, {scale: "ms", side: 1, size: 50, grid: {show: false}}]
    };
  };
  function draw(data) {
    data.members.forEach(function (m) {
      var key = m.balancer + "\u0000" + m.member;
      var box = null;
      document.querySelectorAll("[data-chart]").forEach(function (el) {
        if (el.getAttribute("data-balancer") === m.balancer && el.getAttribute("data-member") === m.member) box = el;
      });
      if (!box) return;
      var series = [data.times, m.rps, m.errors, m.p50, m.p99];
      if (charts[key] && charts[key].root.parentNode === box) {
        charts[key].setData(series);
      } else {
        box.textContent = "";
        charts[key] = new uPlot(options(Math.max(320, box.clientWidth || 520)), series, box);
      }
      var total = m.requests.reduce(function (a, b) { return a + b; }, 0);
      box.setAttribute("data-requests", String(total));
    });
  }
  function load() {
    fetch("api/series", {cache: "no-store", credentials: "same-origin"})
      .then(function (r) { return r.json(); }).then(draw).catch(function () {});
  }
  load();
  setInterval(load, 3000);
})();
