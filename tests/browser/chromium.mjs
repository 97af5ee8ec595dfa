// The Chromium flags every browser test launches with.

// Without the background-networking flags Chromium keeps dialling Google's hosts, which a closed
// network refuses; --no-sandbox because tests may run as root.
export const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
