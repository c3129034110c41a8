// The DICOM viewer's controls. Images are rendered by the server (PNG, cached with ETags); this
// script only builds their URLs from the controls and draws measurements over them. Without it
// the controls still work as a form ("Show").
(function () {
  "use strict";

  var root = document.getElementById("viewer");
  if (!root) return;
  root.classList.add("js");
  root.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });

  var NICE_MM = [1, 2, 5, 10, 20, 50, 100, 200, 500];
  var MODE_NAMES = { mip: "maximum intensity projection", bone: "volume rendering, bone", skin: "volume rendering, skin" };
  var SVG = "http://www.w3.org/2000/svg";
  var form = document.getElementById("viewer-form");
  var $ = function (id) { return document.getElementById(id); };

  function makeViewport(el) {
    var cfg = JSON.parse(el.getAttribute("data-config"));
    return {
      el: el, cfg: cfg,
      frame: el.querySelector(".viewport-frame"),
      stage: el.querySelector(".viewport-stage"),
      img: el.querySelector(".viewport-image"),
      svg: el.querySelector(".viewport-overlay"),
      status: el.querySelector(".viewport-status"),
      scaleLine: el.querySelector(".scale-line"),
      scaleText: el.querySelector(".scale-text"),
      scaleSvg: el.querySelector(".scale-bar"),
      plane: cfg.plane, index: cfg.index, c: cfg.window.c, w: cfg.window.w,
      zoom: 1, panX: 0, panY: 0
    };
  }

  var viewports = Array.prototype.map.call(root.querySelectorAll(".viewport"), makeViewport);
  var main = viewports[0];
  var other = viewports[1] || null;
  if (!main) return;
  var checked3d = form.querySelector('input[name="plane"][value="3d"]');
  var state = {
    view3d: !!(checked3d && checked3d.checked),
    mode: $("mode-select") ? $("mode-select").value : "mip",
    angle: $("angle-range") ? Number($("angle-range").value) : 0,
    tool: null, points: [], cursor: null, segPreview: false, rotating: null
  };

  // --- geometry and text ---------------------------------------------------------------------

  function geom(vp) { return vp.cfg.planes[vp.plane]; }

  function position(vp) {
    var g = geom(vp);
    if (g.start === null) return g.slices > 1 ? "Frame " + (vp.index + 1) : "";
    var mm = g.start + vp.index * g.step;
    return (mm >= 0 ? g.letters[0] : g.letters[1]) + " " + Math.abs(mm).toFixed(1) + " mm";
  }

  function fmt(n) { return String(Math.round(n * 100) / 100); }

  function altText(vp) {
    if (vp === main && state.view3d) {
      return vp.cfg.title + ", " + vp.cfg.description + ": 3D " + MODE_NAMES[state.mode] + ", turned " + state.angle + " degrees";
    }
    var g = geom(vp), where = position(vp);
    return vp.cfg.title + ", " + vp.cfg.description + ": " + vp.plane + " slice " + (vp.index + 1) + " of " + g.slices +
      (where ? ", " + where : "") + ", window width " + fmt(vp.w) + ", level " + fmt(vp.c);
  }

  function imageUrl(vp) {
    var base = vp.cfg.base;
    if (vp === main && state.view3d) return base + "/3d/" + state.mode + "/" + state.angle + ".png";
    var query = "?c=" + encodeURIComponent(fmt(vp.c)) + "&w=" + encodeURIComponent(fmt(vp.w));
    if (vp === main && state.segPreview) {
      return base + "/segmentation/" + vp.plane + "/" + vp.index + ".png" + query +
        "&lo=" + encodeURIComponent($("seg-lower").value) + "&hi=" + encodeURIComponent($("seg-upper").value);
    }
    return base + "/" + vp.plane + "/" + vp.index + ".png" + query;
  }

  // --- drawing -------------------------------------------------------------------------------

  function render(vp) {
    var threeD = vp === main && state.view3d;
    var width = threeD ? vp.cfg.frameSize : geom(vp).width;
    var height = threeD ? vp.cfg.frameSize : geom(vp).height;
    var url = imageUrl(vp);
    if (vp.img.getAttribute("src") !== url) {
      vp.frame.classList.add("loading");
      vp.frame.setAttribute("aria-busy", "true");
      vp.img.src = url;
    }
    vp.img.width = width;
    vp.img.height = height;
    vp.img.alt = altText(vp);
    vp.svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    var labels = threeD ? null : geom(vp).labels;
    ["top", "bottom", "left", "right"].forEach(function (edge, i) {
      vp.el.querySelector('[data-edge="' + edge + '"]').textContent = labels ? labels[i] : "";
    });
    vp.status.textContent = threeD ? altText(vp) :
      vp.plane.charAt(0).toUpperCase() + vp.plane.slice(1) + " " + (vp.index + 1) + "/" + geom(vp).slices +
      (position(vp) ? " · " + position(vp) : "") + (vp.cfg.color ? "" : " · W " + fmt(vp.w) + " L " + fmt(vp.c)) +
      " · zoom " + Math.round(vp.zoom * 100) + "%";
    vp.scaleSvg.style.visibility = threeD ? "hidden" : "visible";
    applyTransform(vp);
    if (vp === main) {
      drawOverlay();
      updateLinks();
      prefetch(vp);
    }
  }

  function prefetch(vp) {
    if (state.view3d || state.segPreview) return;
    [vp.index - 1, vp.index + 1].forEach(function (i) {
      if (i < 0 || i >= geom(vp).slices) return;
      var saved = vp.index;
      vp.index = i;
      new Image().src = imageUrl(vp);
      vp.index = saved;
    });
  }

  function applyTransform(vp) {
    vp.stage.style.transform = "translate(" + vp.panX + "px, " + vp.panY + "px) scale(" + vp.zoom + ")";
    updateScaleBar(vp);
  }

  // Where the picture is on screen: the image box letterboxes it (object-fit: contain).
  function pictureRect(vp, width, height) {
    var box = vp.img.getBoundingClientRect();
    var scale = Math.min(box.width / width, box.height / height);
    var w = width * scale, h = height * scale;
    return { left: box.left + (box.width - w) / 2, top: box.top + (box.height - h) / 2, width: w, height: h };
  }

  function updateScaleBar(vp) {
    if (vp === main && state.view3d) return;
    var g = geom(vp);
    var rect = pictureRect(vp, g.width, g.height);
    if (!rect.width) return;
    var mmPerCssPx = g.mm * g.width / rect.width;
    var room = Math.max(40, vp.frame.clientWidth / 5);
    var length = NICE_MM[0];
    NICE_MM.forEach(function (n) { if (n / mmPerCssPx <= room) length = n; });
    var px = length / mmPerCssPx;
    vp.scaleSvg.setAttribute("width", String(Math.ceil(Math.max(px + 12, 64))));
    vp.scaleLine.setAttribute("x2", String(4 + px));
    vp.scaleText.textContent = vp.cfg.spacingKnown ? length + " mm" : length + " px";
  }

  function svgEl(name, attrs, text) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text) el.textContent = text;
    return el;
  }

  function drawMark(points, label, pending) {
    var g = geom(main);
    var size = Math.max(g.width, g.height);
    var stroke = String(size / 300 + 0.6);
    var cls = pending ? "mark mark-pending" : "mark";
    if (points.length > 1) {
      main.svg.appendChild(svgEl("polyline", {
        points: points.map(function (p) { return p[0] + "," + p[1]; }).join(" "),
        "class": cls, "stroke-width": stroke, fill: "none"
      }));
    }
    points.forEach(function (p) {
      main.svg.appendChild(svgEl("circle", { cx: p[0], cy: p[1], r: size / 150 + 1, "class": cls, "stroke-width": stroke, fill: "none" }));
    });
    if (label && points.length) {
      var last = points[points.length - 1];
      main.svg.appendChild(svgEl("text", { x: last[0] + size / 80, y: last[1] - size / 80, "class": "mark-label", "font-size": String(size / 28) }, label));
    }
  }

  function drawOverlay() {
    while (main.svg.firstChild) main.svg.removeChild(main.svg.firstChild);
    if (state.view3d) return;
    document.querySelectorAll("#notes li[data-note-id]").forEach(function (li) {
      if (li.getAttribute("data-plane") !== main.plane || Number(li.getAttribute("data-slice")) !== main.index) return;
      var points = li.getAttribute("data-points").split(" ").map(function (p) { return p.split(",").map(Number); });
      drawMark(points, li.getAttribute("data-label"), false);
    });
    if (state.points.length) drawMark(state.points, "", true);
    if (state.tool && state.cursor) {
      var g = geom(main), s = Math.max(g.width, g.height) / 40, c = state.cursor;
      main.svg.appendChild(svgEl("path", {
        d: "M" + (c[0] - s) + " " + c[1] + "H" + (c[0] + s) + "M" + c[0] + " " + (c[1] - s) + "V" + (c[1] + s),
        "class": "mark mark-pending", "stroke-width": String(g.width / 300 + 0.6)
      }));
    }
  }

  // --- state changes -------------------------------------------------------------------------

  function setIndex(vp, index, fromLink) {
    var n = geom(vp).slices;
    vp.index = Math.max(0, Math.min(n - 1, index));
    if (vp === main) {
      $("slice-range").value = String(vp.index);
      $("slice-range").setAttribute("aria-valuetext", "Slice " + (vp.index + 1) + " of " + n);
      $("slice-number").textContent = (vp.index + 1) + " / " + n;
      $("slice-position").textContent = position(vp);
      state.points = [];
      remember();
    }
    render(vp);
    if (!fromLink) link(vp);
  }

  // Linked scrolling: the same patient position when both share a frame of reference and the
  // plane has positions, else the same fraction of the stack.
  function link(source) {
    if (!other) return;
    var target = source === main ? other : main;
    if (target === main && state.view3d) return;
    var gs = geom(source), gt = geom(target), index;
    if (source.cfg.frame && source.cfg.frame === target.cfg.frame && gs.start !== null && gt.start !== null) {
      index = Math.round((gs.start + source.index * gs.step - gt.start) / gt.step);
    } else {
      index = Math.round(source.index / Math.max(1, gs.slices - 1) * (gt.slices - 1));
    }
    setIndex(target, index, true);
  }

  function setPlane(value) {
    state.view3d = value === "3d";
    root.querySelector(".slice-controls").hidden = state.view3d;
    var windowControls = root.querySelector(".window-controls");
    if (windowControls) windowControls.hidden = state.view3d || main.cfg.color;
    if (root.querySelector(".controls-3d")) root.querySelector(".controls-3d").hidden = !state.view3d;
    stopRotating();
    if (!state.view3d) {
      viewports.forEach(function (vp) {
        if (!vp.cfg.planes[value]) return;
        vp.plane = value;
        vp.zoom = 1; vp.panX = 0; vp.panY = 0;
        vp.index = Math.floor(geom(vp).slices / 2);
      });
      $("slice-range").max = String(geom(main).slices - 1);
      setIndex(main, main.index);
      if (other) render(other);
    } else {
      main.zoom = 1; main.panX = 0; main.panY = 0;
      render(main);
    }
    remember();
  }

  function setWindow(c, w) {
    if (!(w > 0) || !isFinite(c)) return;
    main.c = c;
    main.w = w;
    render(main);
    remember();
  }

  function zoomBy(vp, factor) {
    vp.zoom = Math.max(0.5, Math.min(8, vp.zoom * factor));
    render(vp);
  }

  function resetView(vp) {
    vp.zoom = 1; vp.panX = 0; vp.panY = 0;
    render(vp);
  }

  function updateLinks() {
    var exportLink = $("export-png");
    if (exportLink) {
      exportLink.href = state.view3d ? imageUrl(main) :
        main.cfg.base + "/export/" + main.plane + "/" + main.index + ".png?c=" + fmt(main.c) + "&w=" + fmt(main.w);
    }
    var rotation = $("export-rotation");
    if (rotation) rotation.href = main.cfg.base + "/rotation/" + state.mode + ".png";
  }

  // The address bar keeps the view, so a reload (or a copied link) shows the same thing.
  function remember() {
    var params = new URLSearchParams(window.location.search);
    params.set("plane", state.view3d ? "3d" : main.plane);
    params.set("i", String(main.index));
    params.set("c", fmt(main.c));
    params.set("w", fmt(main.w));
    params.delete("preset");
    if (state.view3d) { params.set("mode", state.mode); params.set("angle", String(state.angle)); }
    history.replaceState(null, "", window.location.pathname + "?" + params.toString());
  }

  // --- 3D ------------------------------------------------------------------------------------

  function setAngle(angle) {
    state.angle = ((Math.round(angle / main.cfg.angleStep) * main.cfg.angleStep) % 360 + 360) % 360;
    $("angle-range").value = String(state.angle);
    $("angle-value").textContent = state.angle + "°";
    render(main);
    remember();
  }

  function stopRotating() {
    if (state.rotating) clearInterval(state.rotating);
    state.rotating = null;
    var button = $("rotate-button");
    if (button) { button.setAttribute("aria-pressed", "false"); button.textContent = "Rotate"; }
  }

  function toggleRotation() {
    if (state.rotating) { stopRotating(); return; }
    var button = $("rotate-button");
    button.setAttribute("aria-pressed", "true");
    button.textContent = "Stop rotating";
    state.rotating = setInterval(function () {
      if (main.img.complete) setAngle(state.angle + main.cfg.angleStep);
    }, 120);
  }

  // --- measurements --------------------------------------------------------------------------

  var NEEDED = { distance: 2, angle: 3, text: 1 };

  function chooseTool(tool) {
    state.tool = state.tool === tool ? null : tool;
    state.points = [];
    state.cursor = state.tool ? [geom(main).width / 2, geom(main).height / 2] : null;
    root.querySelectorAll("[data-measure]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-measure") === state.tool));
    });
    main.frame.classList.toggle("measuring", !!state.tool);
    drawOverlay();
    if (state.tool) main.frame.focus();
  }

  function addPoint(point) {
    if (state.tool === "text" && !$("note-text").value.trim()) {
      $("note-text").focus();
      return;
    }
    state.points.push([Math.round(point[0] * 100) / 100, Math.round(point[1] * 100) / 100]);
    if (state.points.length >= NEEDED[state.tool]) saveNote();
    drawOverlay();
  }

  function csrfHeaders() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}"); } catch (e) { return {}; }
  }

  function saveNote() {
    var notes = $("notes");
    var values = {
      kind: state.tool, plane: main.plane, slice: String(main.index),
      points: state.points.map(function (p) { return p[0] + "," + p[1]; }).join(" "),
      text: state.tool === "text" ? $("note-text").value : ""
    };
    state.points = [];
    if (state.tool === "text") $("note-text").value = "";
    if (notes && window.htmx) {
      window.htmx.ajax("POST", root.getAttribute("data-notes-url"), {
        source: notes, target: "#notes", swap: "outerHTML", values: values, headers: csrfHeaders()
      });
    }
  }

  function naturalPoint(event) {
    var g = geom(main);
    var rect = pictureRect(main, g.width, g.height);
    return [(event.clientX - rect.left) / rect.width * g.width, (event.clientY - rect.top) / rect.height * g.height];
  }

  // --- events --------------------------------------------------------------------------------

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var c = Number($("window-center").value), w = Number($("window-width").value);
    setWindow(c, w);
    setIndex(main, Number($("slice-range").value));
  });

  form.querySelectorAll('input[name="plane"]').forEach(function (radio) {
    radio.addEventListener("change", function () {
      if (!radio.checked) return;
      // A stored series whose 3D view is not built yet: the page says what building it costs.
      if (radio.value === "3d" && root.hasAttribute("data-3d-unbuilt")) { form.submit(); return; }
      setPlane(radio.value);
    });
  });

  $("slice-range").addEventListener("input", function () { setIndex(main, Number(this.value)); });

  var presetSelect = $("preset-select");
  if (presetSelect) {
    presetSelect.addEventListener("change", function () {
      var option = presetSelect.selectedOptions[0];
      if (!option || option.value === "custom") { $("window-width").focus(); return; }
      $("window-center").value = option.getAttribute("data-c");
      $("window-width").value = option.getAttribute("data-w");
      setWindow(Number(option.getAttribute("data-c")), Number(option.getAttribute("data-w")));
    });
    ["window-center", "window-width"].forEach(function (id) {
      $(id).addEventListener("change", function () {
        var c = Number($("window-center").value), w = Number($("window-width").value);
        var match = Array.prototype.find.call(presetSelect.options, function (o) {
          return Number(o.getAttribute("data-c")) === c && Number(o.getAttribute("data-w")) === w;
        });
        presetSelect.value = match ? match.value : "custom";
        setWindow(c, w);
      });
    });
  }

  if ($("mode-select")) {
    $("mode-select").addEventListener("change", function () { state.mode = this.value; render(main); remember(); });
    $("angle-range").addEventListener("input", function () { setAngle(Number(this.value)); });
    $("rotate-button").addEventListener("click", toggleRotation);
  }

  root.querySelectorAll("[data-zoom]").forEach(function (button) {
    button.addEventListener("click", function () {
      var how = button.getAttribute("data-zoom");
      viewports.forEach(function (vp) {
        if (how === "reset") resetView(vp); else zoomBy(vp, how === "in" ? 1.25 : 0.8);
      });
    });
  });

  root.querySelectorAll("[data-measure]").forEach(function (button) {
    button.addEventListener("click", function () { chooseTool(button.getAttribute("data-measure")); });
  });

  var segPreview = $("seg-preview");
  if (segPreview) {
    segPreview.addEventListener("change", function () { state.segPreview = segPreview.checked; render(main); });
    ["seg-lower", "seg-upper"].forEach(function (id) {
      $(id).addEventListener("change", function () { if (state.segPreview) render(main); });
    });
    if ($("seg-bone")) {
      $("seg-bone").addEventListener("click", function () {
        $("seg-lower").value = this.getAttribute("data-lo");
        $("seg-upper").value = this.getAttribute("data-hi");
        if (state.segPreview) render(main);
      });
    }
  }

  viewports.forEach(function (vp) {
    var threeD = function () { return vp === main && state.view3d; };
    vp.frame.addEventListener("wheel", function (event) {
      event.preventDefault();
      var step = event.deltaY > 0 ? 1 : -1;
      if (threeD()) setAngle(state.angle + step * vp.cfg.angleStep); else setIndex(vp, vp.index + step);
    }, { passive: false });

    vp.frame.addEventListener("keydown", function (event) {
      var k = event.key, measuring = vp === main && state.tool && !threeD();
      var arrows = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] };
      if (measuring && arrows[k]) {
        var step = event.shiftKey ? 10 : 1, g = geom(main);
        state.cursor = [Math.max(0, Math.min(g.width, state.cursor[0] + arrows[k][0] * step)),
          Math.max(0, Math.min(g.height, state.cursor[1] + arrows[k][1] * step))];
        drawOverlay();
      } else if (measuring && (k === "Enter" || k === " ")) {
        addPoint(state.cursor);
      } else if (k === "Escape" && vp === main && state.tool) {
        chooseTool(null);
      } else if (event.shiftKey && arrows[k]) {
        vp.panX -= arrows[k][0] * 20; vp.panY -= arrows[k][1] * 20;
        applyTransform(vp);
      } else if (threeD() && (k === "ArrowLeft" || k === "ArrowRight" || k === "ArrowUp" || k === "ArrowDown")) {
        setAngle(state.angle + (k === "ArrowRight" || k === "ArrowDown" ? 1 : -1) * vp.cfg.angleStep);
      } else if (k === "ArrowUp" || k === "ArrowLeft") { setIndex(vp, vp.index - 1);
      } else if (k === "ArrowDown" || k === "ArrowRight") { setIndex(vp, vp.index + 1);
      } else if (k === "PageUp") { setIndex(vp, vp.index - 10);
      } else if (k === "PageDown") { setIndex(vp, vp.index + 10);
      } else if (k === "Home") { setIndex(vp, 0);
      } else if (k === "End") { setIndex(vp, geom(vp).slices - 1);
      } else if (k === "+" || k === "=") { zoomBy(vp, 1.25);
      } else if (k === "-") { zoomBy(vp, 0.8);
      } else if (k === "0") { resetView(vp);
      } else { return; }
      event.preventDefault();
    });

    var drag = null;
    vp.frame.addEventListener("pointerdown", function (event) {
      if (vp === main && state.tool && !threeD()) {
        var point = naturalPoint(event), g = geom(main);
        if (point[0] < 0 || point[1] < 0 || point[0] > g.width || point[1] > g.height) return;
        state.cursor = point;
        addPoint(point);
        return;
      }
      drag = { x: event.clientX, y: event.clientY, panX: vp.panX, panY: vp.panY };
      vp.frame.setPointerCapture(event.pointerId);
    });
    vp.frame.addEventListener("pointermove", function (event) {
      if (!drag) return;
      vp.panX = drag.panX + event.clientX - drag.x;
      vp.panY = drag.panY + event.clientY - drag.y;
      applyTransform(vp);
    });
    ["pointerup", "pointercancel"].forEach(function (name) {
      vp.frame.addEventListener(name, function () { drag = null; });
    });
    var loaded = function () {
      vp.frame.classList.remove("loading");
      vp.frame.removeAttribute("aria-busy");
    };
    vp.img.addEventListener("load", function () { loaded(); updateScaleBar(vp); });
    vp.img.addEventListener("error", loaded);
  });

  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "notes") drawOverlay();
  });
  document.body.addEventListener("htmx:afterSettle", function () { drawOverlay(); });
  window.addEventListener("resize", function () { viewports.forEach(updateScaleBar); });

  viewports.forEach(render);
})();
