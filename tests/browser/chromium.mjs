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

// The flags of the tests that make a call: a fake microphone, granted without a prompt; WebRTC over loopback
// (the only interface in CI's sandbox); the model's audio plays without a click.
export const MEDIA_FLAGS = [
  ...FLAGS,
  "--use-fake-device-for-media-stream",
  "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--autoplay-policy=no-user-gesture-required",
];
