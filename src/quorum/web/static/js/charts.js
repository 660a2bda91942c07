// Draws the dashboard's Plotly figures, described as JSON in the page.
const specs = JSON.parse(document.getElementById("chart-data").textContent);
const config = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
const base = {
  margin: { t: 10, r: 50, b: 60, l: 60 },
  height: 300,
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
  font: { family: "system-ui, sans-serif", size: 12 },
};

for (const [id, spec] of Object.entries(specs)) {
  const element = document.getElementById(`chart-${id}`);
  if (element && window.Plotly) window.Plotly.newPlot(element, spec.data, { ...base, ...spec.layout }, config);
}
