// The upload wizard: (1) describe the product, which creates it as "Registering"; (2) upload its main file
// and any auxiliary files; (3) associate each column of the main table with a role (a system column such as
// RA, Dec or z, or any name written in) and a UCD; then publish. Every step is a REST API call; the server
// checks everything again (formats, sizes, mandatory columns) and its messages are shown as they come.
(function () {
  "use strict";

  var api = window.pz.api;
  var showError = window.pz.showError;
  var data = JSON.parse(document.getElementById("wizard-data").textContent);
  var uiRoot = document.body.getAttribute("data-ui");

  var systemByAlias = {};
  var systemByName = {};
  data.system_columns.forEach(function (column) {
    systemByAlias[column.alias.toLowerCase()] = column;
    column.usual_names.forEach(function (name) { systemByName[name] = column; });
  });

  var state = {
    productId: null,
    productType: null,
    displayName: "",
    uploaded: {},
    mainUploaded: false,
    columns: []
  };

  var steps = ["details", "files", "columns", "done"];
  var forms = {
    details: document.getElementById("step-details"),
    files: document.getElementById("step-files"),
    columns: document.getElementById("step-columns"),
    done: document.getElementById("step-done")
  };

  function $(form, selector) { return form.querySelector(selector); }

  function show(step) {
    var position = steps.indexOf(step);
    steps.forEach(function (name, index) {
      forms[name].hidden = name !== step;
      var marker = document.querySelector('#steps li[data-step="' + name + '"]');
      if (index === position) marker.setAttribute("aria-current", "step");
      else marker.removeAttribute("aria-current");
      marker.classList.toggle("done", index < position);
    });
    var heading = forms[step].querySelector("h2");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  function busy(form, isBusy, message) {
    Array.prototype.forEach.call(form.querySelectorAll("button"), function (button) { button.disabled = isBusy; });
    var progress = $(form, ".progress");
    if (progress) progress.textContent = message || "";
  }

  function typeName(type) {
    var option = document.querySelector('#product_type option[value="' + type + '"]');
    return option ? option.textContent.trim() : type;
  }

  function megabytes(size) {
    return size >= 1048576 ? (size / 1048576).toFixed(1) + " MiB" : size + " bytes";
  }

  // Step 1: describe ------------------------------------------------------------------------------------

  var typeSelect = document.getElementById("product_type");
  var pzCodeField = document.getElementById("pz-code-field");

  function typeChanged() {
    var type = typeSelect.value;
    var option = typeSelect.selectedOptions[0];
    document.getElementById("type-help").textContent = type && option ? option.title : "";
    pzCodeField.hidden = data.pz_code_forbidden_types.indexOf(type) >= 0;
  }
  typeSelect.addEventListener("change", typeChanged);

  function detailFields() {
    var official = document.getElementById("official_product");
    var fields = {
      display_name: document.getElementById("display_name").value.trim(),
      release: document.getElementById("release").value || null,
      description: document.getElementById("description").value
    };
    if (official) fields.official_product = official.checked; // admins only
    fields.pz_code = pzCodeField.hidden ? null : (document.getElementById("pz_code").value.trim() || null);
    return fields;
  }

  forms.details.addEventListener("submit", function (event) {
    event.preventDefault();
    var form = forms.details;
    var error = $(form, ".error");
    var fields = detailFields();
    if (!fields.display_name) return showError(error, new Error("Give the product a name."));
    if (!state.productId && !typeSelect.value) return showError(error, new Error("Choose the product type."));
    showError(error, null);
    busy(form, true);
    var saved;
    if (state.productId) {
      saved = api("products/" + state.productId + "/", { method: "PATCH", json: fields });
    } else {
      fields.product_type = typeSelect.value;
      fields.status = 0;
      saved = api("products/", { method: "POST", json: fields });
    }
    saved.then(function (product) {
      state.productId = product.id;
      state.productType = product.product_type_internal_name;
      state.displayName = product.display_name;
      typeSelect.disabled = true; // the type of a product is fixed once created
      busy(form, false);
      show(state.mainUploaded ? "columns" : "files");
      if (state.mainUploaded) loadColumns();
    }, function (failure) {
      busy(form, false);
      showError(error, failure);
    });
  });

  // Step 2: files ---------------------------------------------------------------------------------------

  function upload(file, role) {
    var body = new FormData();
    body.append("product", String(state.productId));
    body.append("role", String(role));
    body.append("type", file.type || "application/octet-stream");
    body.append("file", file, file.name);
    return api("product-files/", { method: "POST", body: body });
  }

  forms.files.addEventListener("submit", function (event) {
    event.preventDefault();
    var form = forms.files;
    var error = $(form, ".error");
    var main = document.getElementById("main_file").files[0];
    var auxiliary = Array.prototype.slice.call(document.getElementById("auxiliary_files").files);
    if (!state.mainUploaded && !main) return showError(error, new Error("Choose the main file."));
    var tooLarge = [main].concat(auxiliary).filter(function (file) {
      return file && file.size > data.upload_limit_bytes;
    });
    if (tooLarge.length) {
      return showError(error, new Error(tooLarge[0].name + " is " + megabytes(tooLarge[0].size) +
        ", over the upload limit of " + megabytes(data.upload_limit_bytes) + "."));
    }
    showError(error, null);
    var queue = [];
    if (!state.mainUploaded) queue.push({ file: main, role: 0 });
    auxiliary.forEach(function (file) {
      if (!state.uploaded[file.name]) queue.push({ file: file, role: 2 });
    });
    var chain = Promise.resolve();
    queue.forEach(function (item) {
      chain = chain.then(function () {
        busy(form, true, "Uploading " + item.file.name + " (" + megabytes(item.file.size) + ")…");
        return upload(item.file, item.role).then(function () {
          state.uploaded[item.file.name] = true;
          if (item.role === 0) state.mainUploaded = true;
        });
      });
    });
    chain.then(function () {
      busy(form, true, "Reading the columns…");
      return loadColumns();
    }).then(function () {
      busy(form, false);
    }, function (failure) {
      busy(form, false);
      showError(error, failure);
    });
  });

  // Step 3: columns -------------------------------------------------------------------------------------

  function samples(preview, column) {
    var values = [];
    for (var index = 0; index < preview.length && values.length < 3; index++) {
      var value = preview[index][column];
      if (value === null || value === undefined || value === "") continue;
      // 10 significant digits, as the product page shows them: no 0.12000000000000001.
      values.push(typeof value === "number" ? String(Number(value.toPrecision(10))) : String(value));
    }
    return values.join(", ");
  }

  function guess(columnName, taken) {
    var known = systemByName[columnName.toLowerCase()];
    return known && !taken[known.alias.toLowerCase()] ? known : null;
  }

  function cell(row, child) {
    var td = document.createElement("td");
    if (child) td.appendChild(child);
    row.appendChild(td);
    return td;
  }

  function input(name, value, listId) {
    var element = document.createElement("input");
    element.type = "text";
    element.name = name;
    element.value = value || "";
    element.autocomplete = "off";
    if (listId) element.setAttribute("list", listId);
    return element;
  }

  function renderColumns(columns, preview) {
    var tbody = document.querySelector("#association tbody");
    tbody.textContent = "";
    var taken = {};
    columns.forEach(function (column) { if (column.alias) taken[column.alias.toLowerCase()] = true; });
    columns.forEach(function (column) {
      var row = document.createElement("tr");
      row.setAttribute("data-content-id", column.id);
      row.setAttribute("data-column", column.column_name);
      var name = document.createElement("code");
      name.textContent = column.column_name;
      cell(row, name);
      cell(row).className = "sample";
      row.lastChild.textContent = samples(preview, column.column_name);
      var alias = input("alias-" + column.column_name, column.alias, "system-aliases");
      var ucd = input("ucd-" + column.column_name, column.ucd);
      alias.setAttribute("aria-label", "Role of column " + column.column_name);
      ucd.setAttribute("aria-label", "UCD of column " + column.column_name);
      if (!column.alias) {
        var suggestion = guess(column.column_name, taken);
        if (suggestion) {
          taken[suggestion.alias.toLowerCase()] = true;
          alias.value = suggestion.alias;
          alias.classList.add("suggested");
          alias.title = "Suggested from the column name";
          if (!column.ucd) {
            ucd.value = suggestion.ucd;
            ucd.setAttribute("data-auto", "1");
          }
        }
      }
      alias.addEventListener("input", function () {
        alias.classList.remove("suggested");
        var known = systemByAlias[alias.value.trim().toLowerCase()];
        if (!ucd.value.trim() || ucd.getAttribute("data-auto") === "1") {
          ucd.value = known ? known.ucd : "";
          ucd.setAttribute("data-auto", "1");
        }
      });
      ucd.addEventListener("input", function () { ucd.removeAttribute("data-auto"); });
      cell(row, alias);
      cell(row, ucd);
      tbody.appendChild(row);
    });
    document.getElementById("association").hidden = columns.length === 0;
    document.getElementById("no-columns").hidden = columns.length !== 0;
    var mandatory = data.mandatory_aliases[state.productType] || [];
    document.getElementById("mandatory-help").textContent = mandatory.length
      ? "A " + typeName(state.productType) + " needs a column for each of: " + mandatory.join(", ") + "."
      : "";
  }

  function loadColumns() {
    return api("products/" + state.productId + "/registry/").then(function (registered) {
      state.columns = registered.columns;
      return api("products/" + state.productId + "/main_file_info/");
    }).then(function (info) {
      renderColumns(state.columns, (info.main_file && info.main_file.preview) || []);
      show("columns");
    });
  }

  function canonicalAlias(value) {
    var known = systemByAlias[value.toLowerCase()];
    return known ? known.alias : value;
  }

  function wanted() {
    return Array.prototype.map.call(document.querySelectorAll("#association tbody tr"), function (row) {
      var column = state.columns.filter(function (item) {
        return String(item.id) === row.getAttribute("data-content-id");
      })[0];
      return {
        column: column,
        alias: canonicalAlias(row.querySelector('input[name^="alias-"]').value.trim()),
        ucd: row.querySelector('input[name^="ucd-"]').value.trim()
      };
    });
  }

  function patchColumn(id, fields) {
    return api("product-contents/" + id + "/", {
      method: "PATCH",
      body: new URLSearchParams(fields),
      headers: { "Content-Type": "application/x-www-form-urlencoded" }
    });
  }

  forms.columns.addEventListener("submit", function (event) {
    event.preventDefault();
    var form = forms.columns;
    var error = $(form, ".error");
    var rows = wanted();
    var given = {};
    var repeated = null;
    rows.forEach(function (row) {
      if (!row.alias) return;
      var key = row.alias.toLowerCase();
      if (given[key]) repeated = row.alias;
      given[key] = true;
    });
    if (repeated) return showError(error, new Error("The role " + repeated + " is given to two columns."));
    var missing = (data.mandatory_aliases[state.productType] || []).filter(function (alias) {
      return !given[alias.toLowerCase()];
    });
    if (missing.length) {
      return showError(error, new Error("Associate a column with each of: " + missing.join(", ") +
        " (required for a " + typeName(state.productType) + ")."));
    }
    showError(error, null);
    var changed = rows.filter(function (row) {
      return row.alias !== (row.column.alias || "") || row.ucd !== (row.column.ucd || "");
    });
    // Roles move between columns in two passes: free the old ones first, so no role is held twice.
    var chain = Promise.resolve();
    changed.forEach(function (row) {
      if (row.column.alias && row.column.alias !== row.alias) {
        chain = chain.then(function () { return patchColumn(row.column.id, { alias: "" }); });
      }
    });
    changed.forEach(function (row) {
      chain = chain.then(function () {
        busy(form, true, "Saving column " + row.column.column_name + "…");
        return patchColumn(row.column.id, { alias: row.alias, ucd: row.ucd }).then(function (saved) {
          row.column.alias = saved.alias;
          row.column.ucd = saved.ucd;
        });
      });
    });
    chain.then(function () {
      busy(form, true, "Publishing…");
      return api("products/" + state.productId + "/", { method: "PATCH", json: { status: 1 } });
    }).then(function (product) {
      busy(form, false);
      document.getElementById("done-name").textContent = product.display_name;
      document.getElementById("done-link").setAttribute("href", uiRoot + "products/" + product.id + "/");
      show("done");
    }, function (failure) {
      busy(form, false);
      if (failure.status === 406 && failure.body && failure.body.missing_columns) {
        failure = new Error("Associate a column with each of: " + failure.body.missing_columns.join(", ") + ".");
      }
      showError(error, failure);
    });
  });

  // Back buttons and resuming -------------------------------------------------------------------------

  Array.prototype.forEach.call(document.querySelectorAll("[data-back]"), function (button) {
    button.addEventListener("click", function () { show(button.getAttribute("data-back")); });
  });

  typeChanged();
  if (data.product) {
    state.productId = data.product.id;
    state.productType = data.product.product_type;
    state.displayName = data.product.display_name;
    state.mainUploaded = data.product.has_main_file;
    document.getElementById("display_name").value = data.product.display_name;
    document.getElementById("release").value = data.product.release === null ? "" : String(data.product.release);
    document.getElementById("pz_code").value = data.product.pz_code || "";
    document.getElementById("description").value = data.product.description || "";
    var official = document.getElementById("official_product");
    if (official) official.checked = data.product.official;
    typeSelect.value = data.product.product_type;
    typeSelect.disabled = true;
    typeChanged();
    if (state.mainUploaded) {
      loadColumns().catch(function (failure) { showError($(forms.details, ".error"), failure); });
    } else {
      show("files");
    }
  }
})();
