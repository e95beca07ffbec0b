// The dashboard's own script: confirmations, the tenant switcher, live values over
// Server-Sent Events, and the device chart (Chart.js, loaded only on the device page).
"use strict";

(function () {
  function formatTemperature(value) {
    return value === null || value === undefined ? "—" : value.toFixed(1) + " °C";
  }

  var outputLabels = { HEAT_ON: ["Heating", "heating"], COOL_ON: ["Cooling", "cooling"], OFF: ["Idle", "idle"] };

  // Writes a sample's values into the [data-field] cells under `container`.
  function showSample(container, sample) {
    function set(field, text) {
      var cell = container.querySelector('[data-field="' + field + '"]');
      if (cell) { cell.textContent = text; }
      return cell;
    }
    set("temp_inside_c", formatTemperature(sample.temp_inside_c));
    set("temp_outside_c", formatTemperature(sample.temp_outside_c));
    set("setpoint_c", formatTemperature(sample.setpoint_c));
    set("mode", sample.mode);
    var output = container.querySelector('[data-field="output"]');
    if (output) {
      var label = outputLabels[sample.output] || [sample.output, "idle"];
      var span = document.createElement("span");
      span.className = "output " + label[1];
      span.textContent = label[0];
      output.replaceChildren(span);
    }
    var seen = container.querySelector('[data-field="last_seen"]');
    if (seen) {
      var time = document.createElement("time");
      time.setAttribute("datetime", sample.timestamp);
      time.textContent = new Date(sample.timestamp).toLocaleString();
      seen.replaceChildren(time);
    }
    var status = container.querySelector('[data-field="status"] .status');
    if (status && !status.classList.contains("revoked")) {
      status.className = "status online";
      status.textContent = "online";
    }
  }

  // Opens the live stream; `onSample` gets each committed sample. The browser reconnects by
  // itself; after a reconnect `onReconnect` reloads what may have been missed.
  function subscribe(serial, onSample, onReconnect) {
    if (!window.EventSource) { return; }
    var url = "/api/telemetry/stream/" + (serial ? "?device=" + encodeURIComponent(serial) : "");
    var source = new EventSource(url);
    var opened = false;
    source.addEventListener("open", function () {
      if (opened && onReconnect) { onReconnect(); }
      opened = true;
    });
    source.addEventListener("sample", function (event) {
      onSample(JSON.parse(event.data));
    });
  }

  function setUpOverview(table) {
    subscribe(null, function (sample) {
      var row = table.querySelector('tr[data-serial="' + CSS.escape(sample.device) + '"]');
      if (row) { showSample(row, sample); }
    }, function () { window.location.reload(); });
  }

  function setUpDevice(canvas) {
    var serial = canvas.dataset.serial;
    var seconds = Number(canvas.dataset.seconds);
    var bucket = canvas.dataset.bucket;
    var latest = document.getElementById("latest");
    var chart = null;

    function timeLabel(ms) {
      var date = new Date(ms);
      return seconds > 86400 ? date.toLocaleDateString() + " " + date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
        : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    }

    function draw(buckets) {
      var inside = [], outside = [], setpoint = [], heating = [], cooling = [];
      buckets.forEach(function (b) {
        var x = Date.parse(b.timestamp);
        inside.push({ x: x, y: b.temp_inside_c.avg });
        if (b.temp_outside_c) { outside.push({ x: x, y: b.temp_outside_c.avg }); }
        setpoint.push({ x: x, y: b.setpoint_c.avg });
        heating.push({ x: x, y: b.heating_share });
        cooling.push({ x: x, y: b.cooling_share });
      });
      var now = Date.now();
      var config = {
        data: {
          datasets: [
            { type: "line", label: "Inside", data: inside, borderColor: "#0b5cad", backgroundColor: "#0b5cad", pointRadius: 0, tension: 0.2, yAxisID: "y" },
            { type: "line", label: "Outside", data: outside, borderColor: "#6c7a89", backgroundColor: "#6c7a89", pointRadius: 0, tension: 0.2, yAxisID: "y" },
            { type: "line", label: "Setpoint", data: setpoint, borderColor: "#1e7d32", backgroundColor: "#1e7d32", borderDash: [6, 4], pointRadius: 0, stepped: true, yAxisID: "y" },
            { type: "bar", label: "Heating", data: heating, backgroundColor: "rgba(192,57,43,0.22)", borderWidth: 0, barPercentage: 1, categoryPercentage: 1, yAxisID: "share" },
            { type: "bar", label: "Cooling", data: cooling, backgroundColor: "rgba(31,111,178,0.22)", borderWidth: 0, barPercentage: 1, categoryPercentage: 1, yAxisID: "share" }
          ]
        },
        options: {
          animation: false, maintainAspectRatio: false, parsing: false, normalized: true,
          interaction: { mode: "nearest", axis: "x", intersect: false },
          scales: {
            x: { type: "linear", min: now - seconds * 1000, max: now, ticks: { callback: timeLabel, maxTicksLimit: 8 } },
            y: { title: { display: true, text: "°C" } },
            share: { position: "right", min: 0, max: 1, display: false }
          },
          plugins: { tooltip: { callbacks: { title: function (items) { return items.length ? new Date(items[0].parsed.x).toLocaleString() : ""; } } } }
        }
      };
      if (chart) { chart.destroy(); }
      chart = new window.Chart(canvas, config);
      updateCount();
    }

    function updateCount() {
      canvas.dataset.pointCount = String(chart ? chart.data.datasets[0].data.length : 0);
    }

    function load() {
      var to = new Date(Date.now() + 1000);
      var from = new Date(to.getTime() - seconds * 1000);
      var url = "/api/telemetry/query/?device=" + encodeURIComponent(serial) + "&bucket=" + bucket + "&limit=10000" +
        "&from=" + encodeURIComponent(from.toISOString()) + "&to=" + encodeURIComponent(to.toISOString());
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (response.status === 401) { window.location.assign("/login?expired=1"); throw new Error("session expired"); }
          if (!response.ok) { throw new Error("query failed: " + response.status); }
          return response.json();
        })
        .then(function (body) { draw(body.samples); })
        .catch(function (error) { canvas.dataset.error = String(error.message || error); });
    }

    function append(sample) {
      if (latest) { showSample(latest, sample); }
      if (!chart) { return; }
      var x = Date.parse(sample.timestamp);
      var sets = chart.data.datasets;
      sets[0].data.push({ x: x, y: sample.temp_inside_c });
      if (sample.temp_outside_c !== null && sample.temp_outside_c !== undefined) { sets[1].data.push({ x: x, y: sample.temp_outside_c }); }
      sets[2].data.push({ x: x, y: sample.setpoint_c });
      sets[3].data.push({ x: x, y: sample.output === "HEAT_ON" ? 1 : 0 });
      sets[4].data.push({ x: x, y: sample.output === "COOL_ON" ? 1 : 0 });
      var now = Date.now();
      chart.options.scales.x.min = now - seconds * 1000;
      chart.options.scales.x.max = Math.max(now, x);
      chart.update("none");
      updateCount();
    }

    var script = document.createElement("script");
    script.src = "/static/chart.min.js";
    script.addEventListener("load", load);
    document.head.appendChild(script);
    subscribe(serial, append, load);
  }

  // A line-number gutter beside each script editor, kept in step with its text and scrolling.
  function addLineNumbers(textarea) {
    var gutter = document.createElement("pre");
    gutter.className = "gutter";
    gutter.setAttribute("aria-hidden", "true");
    function update() {
      var count = textarea.value.split("\n").length;
      var numbers = [];
      for (var line = 1; line <= count; line++) { numbers.push(line); }
      gutter.textContent = numbers.join("\n");
      gutter.scrollTop = textarea.scrollTop;
    }
    textarea.parentNode.insertBefore(gutter, textarea);
    textarea.addEventListener("input", update);
    textarea.addEventListener("scroll", function () { gutter.scrollTop = textarea.scrollTop; });
    update();
  }

  // Shows ISO timestamps in <time> elements in the browser's own locale and zone.
  function localizeTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (time) {
      var date = new Date(time.getAttribute("datetime"));
      if (!isNaN(date.getTime())) { time.textContent = date.toLocaleString(); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localizeTimes(document);
    document.querySelectorAll(".editor textarea").forEach(addLineNumbers);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
      });
    });
    // Export times are typed in local time; the API takes UTC with a zone.
    var exportForm = document.getElementById("export-form");
    if (exportForm) {
      exportForm.addEventListener("submit", function () {
        exportForm.querySelectorAll("input[data-utc-target]").forEach(function (input) {
          var target = exportForm.querySelector('input[name="' + input.dataset.utcTarget + '"]');
          target.value = input.value ? new Date(input.value).toISOString() : "";
        });
      });
    }
    // The alert channel form shows only the address field of the chosen kind.
    var channelKind = document.getElementById("channel-kind");
    if (channelKind) {
      var showKind = function () {
        channelKind.form.querySelectorAll("[data-channel-kind]").forEach(function (group) {
          group.hidden = group.dataset.channelKind !== channelKind.value;
        });
      };
      channelKind.addEventListener("change", showKind);
      showKind();
    }
    var tenantSelect = document.getElementById("tenant-select");
    if (tenantSelect) {
      tenantSelect.addEventListener("change", function () { tenantSelect.form.requestSubmit(); });
    }
    var table = document.querySelector('table[data-live="overview"]');
    if (table) { setUpOverview(table); }
    var canvas = document.getElementById("chart");
    if (canvas) { setUpDevice(canvas); }
  });
})();
