// The similar-cars page: talks to POST /search, GET /search/{id} and GET /random; no build step.
"use strict";

const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function filters() {
  const make = $("make").value.trim();
  return make ? [`make=${make}`] : [];
}

function card(car, withScore) {
  const figure = document.createElement("figure");
  figure.className = "card";
  figure.dataset.id = car.id;
  const image = document.createElement("img");
  image.src = car.image_url;
  image.alt = car.class_name || "car";
  image.loading = "lazy";
  const name = document.createElement("strong");
  name.className = "class-name";
  name.textContent = car.class_name || "(unnamed)";
  const details = document.createElement("span");
  details.textContent = [car.make, car.year, car.split].filter(Boolean).join(" · ");
  const text = document.createElement("figcaption");
  text.append(name, document.createElement("br"), details);
  if (withScore) {
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = ` ${car.score.toFixed(3)}`;
    text.append(score);
  }
  figure.append(image, text);
  return figure;
}

function showQuery(src, label) {
  $("query").hidden = false;
  $("query-image").src = src;
  $("query-caption").textContent = label;
}

function showResults(results) {
  const grid = $("results");
  grid.replaceChildren(...results.map((car) => {
    const element = card(car, true);
    element.addEventListener("click", () => searchById(car.id));
    return element;
  }));
  setStatus(results.length ? `${results.length} similar cars` : "no similar cars match the filter");
}

async function call(request) {
  const response = await request;
  const body = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
  if (!response.ok) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg).join("; ") : body.detail;
    throw new Error(detail || `HTTP ${response.status}`);
  }
  return body;
}

async function searchFile(file) {
  showQuery(URL.createObjectURL(file), file.name);
  setStatus("searching…");
  const form = new FormData();
  form.append("file", file);
  form.append("k", $("k").value);
  filters().forEach((f) => form.append("filter", f));
  try {
    showResults((await call(fetch("/search", { method: "POST", body: form }))).results);
  } catch (error) {
    $("results").replaceChildren();
    setStatus(error.message, true);
  }
}

async function searchById(id) {
  setStatus("searching…");
  const params = new URLSearchParams({ k: $("k").value });
  filters().forEach((f) => params.append("filter", f));
  try {
    const body = await call(fetch(`/search/${encodeURIComponent(id)}?${params}`));
    showQuery(body.query.image_url, body.query.class_name || "");
    showResults(body.results);
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function randomCar() {
  try {
    await searchById((await call(fetch("/random"))).id);
  } catch (error) {
    setStatus(error.message, true);
  }
}

$("file").addEventListener("change", (event) => {
  if (event.target.files.length) searchFile(event.target.files[0]);
});
$("random").addEventListener("click", randomCar);
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) searchFile(event.dataTransfer.files[0]);
});
