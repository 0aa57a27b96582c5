// Issue 6, a hub restored from a backup (hub/sync/outbox.ts checkSequence): the outbox's numbering is checked against
// the cloud's synced_seq before anything numbered since the start goes out, and renumbered above it in one
// transaction when the sequence was rewound. The end-to-end case (backup, restore, cloud) is test/e2e/sync-restore.
import { afterEach, expect, it } from "vitest";
import { startTestHub, type TestHub } from "../../helpers/hub.js";

let t: TestHub | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

it("issue 6: a rewound outbox sequence is renumbered above the cloud's synced_seq in one transaction — order, byte totals and dead letters kept, later rows numbered above; a sequence not rewound moves nothing", async () => {
  // A cloud that never answers: the hub never registers, so nothing is sent and the test drives the check itself.
  t = await startTestHub({ env: { HUB_CLOUD_URL: "http://127.0.0.1:9" } });
  const hub = t.hub;
  const sqlite = hub.db.sqlite;
  const outbox = hub.sync.outbox;
  await t.pair("seq-a");
  await t.pair("seq-b");
  const seqs = () => (sqlite.prepare("SELECT seq, kind, ref FROM sync_outbox ORDER BY seq").all() as { seq: number; kind: string; ref: string }[]);
  const sequence = () => (sqlite.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'sync_outbox'").get() as { seq: number }).seq;
  const totals = () => sqlite.prepare("SELECT kind, rows, bytes FROM sync_outbox_totals WHERE rows > 0 ORDER BY kind").all();

  // The start marked everything this process numbers as unchecked, from the sequence it found (0: a new database).
  expect(outbox.startSeq).toBe(0);
  expect(outbox.uncheckedAfter).toBe(0);
  // Not rewound (the cloud has stored less than the mark): nothing moves, the mark goes.
  const before = seqs();
  expect(before.length).toBeGreaterThanOrEqual(2);
  expect(await outbox.checkSequence(0, 0)).toEqual({ after: 0, cloudSeq: 0, shift: 0, rows: 0 });
  expect(seqs()).toEqual(before);
  expect(outbox.uncheckedAfter).toBeNull();
  expect(outbox.renumberings).toBe(0);

  // As after a restore: the rows up to 2 are the backup's, the rest queued since; a dead letter from before.
  sqlite.prepare("INSERT INTO meta (key, value) VALUES ('sync_seq_unchecked_after', '2')").run();
  sqlite.prepare("INSERT INTO sync_dead_letters (seq, kind, ref, row, reason, dead_at) VALUES (1, 'relay', 'x', '{}', 'refused', 0)").run();
  for (let i = 0; i < 5; i++) hub.sync.outbox.addRelay("seq-a", i % 2 === 0, 1000 + i, "plug");
  await hub.sync.outbox.ack(0); // a write through the committer after the relay rows: they are committed
  const rows = seqs();
  const totalsBefore = totals();
  const seqBefore = sequence();
  const old = rows.filter((r) => r.seq <= 2);
  const queued = rows.filter((r) => r.seq > 2);
  expect(queued.length).toBeGreaterThanOrEqual(5);
  // The cloud has stored up to 500 (rows made after the backup, lost with the replaced database).
  const check = await outbox.checkSequence(2, 500);
  expect(check).toEqual({ after: 2, cloudSeq: 500, shift: 498, rows: queued.length });
  const moved = seqs();
  expect(moved.filter((r) => r.seq <= 2)).toEqual(old);
  expect(moved.filter((r) => r.seq > 2)).toEqual(queued.map((r) => ({ ...r, seq: r.seq + 498 })));
  expect(Math.min(...moved.filter((r) => r.seq > 2).map((r) => r.seq))).toBe(501);
  expect(totals()).toEqual(totalsBefore);
  expect(sequence()).toBe(seqBefore + 498);
  expect(outbox.uncheckedAfter).toBeNull();
  expect(outbox.renumberings).toBe(1);
  expect(sqlite.prepare("SELECT seq FROM sync_dead_letters").all()).toEqual([{ seq: 1 }]);
  expect(JSON.parse((sqlite.prepare("SELECT value FROM meta WHERE key = 'sync_seq_renumbered'").get() as { value: string }).value)).toMatchObject({ after: 2, cloud_seq: 500, shift: 498, rows: queued.length });
  // What is queued next is numbered above everything.
  hub.sync.outbox.addRelay("seq-b", true, 2000, "plug");
  await hub.sync.outbox.ack(0);
  expect(seqs().at(-1)).toMatchObject({ ref: "seq-b", seq: seqBefore + 499 });

  // Applied once: the same check again (the mark is gone) moves nothing.
  const after = seqs();
  await outbox.checkSequence(2, 500);
  expect(seqs()).toEqual(after);
});

it("issue 6: a sequence found at start stays the mark across restarts until the cloud was asked; a checked start marks from its own sequence", async () => {
  t = await startTestHub({ env: { HUB_CLOUD_URL: "http://127.0.0.1:9" } });
  await t.pair("mark-a");
  await t.hub.sync.outbox.ack(0);
  const seqNow = t.hub.sync.outbox.sequence();
  expect(seqNow).toBeGreaterThan(0);
  // Never checked (the cloud unreachable): a restart keeps the first process's mark, 0.
  await t.restart();
  expect(t.hub.sync.outbox.startSeq).toBe(seqNow);
  expect(t.hub.sync.outbox.uncheckedAfter).toBe(0);
  await t.hub.sync.outbox.checkSequence(0, 0);
  // Checked: the next start marks from the sequence it finds.
  await t.restart();
  expect(t.hub.sync.outbox.uncheckedAfter).toBe(seqNow);
});
