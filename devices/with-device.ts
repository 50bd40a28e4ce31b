/** A connection to a registered board for the length of one job, always closed after it. */
import { type DeviceEntry, openDevice } from "./registry.js";
import type { Transport } from "./transport/channel.js";

/** Open a device, run `fn`, and always close the link (a failure to close does not hide fn's result or error). */
export async function withDevice<T>(entry: DeviceEntry, fn: (t: Transport) => Promise<T>): Promise<T> {
  const t = await openDevice(entry);
  try {
    return await fn(t);
  } finally {
    await t.close().catch(() => {});
  }
}
