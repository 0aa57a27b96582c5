// Audit log: one row for every change (issue 5 §9), written in the same transaction as the change when
// there is one, so a change without its audit row cannot happen.
import type { CloudOrm } from "./db/open-db.js";
import { auditLogs } from "./db/schema.js";

export interface Actor {
  userId?: string | null;
  hubId?: string | null;
  ip?: string | null;
}

export interface AuditEntry {
  action: string;
  targetType: "user" | "hub" | "device" | "share" | "command" | "session" | "schedule";
  targetId?: string | null;
  detail?: Record<string, unknown>;
}

type Executor = Pick<CloudOrm, "insert">;

export async function audit(db: Executor, at: Date, actor: Actor, e: AuditEntry): Promise<void> {
  await db.insert(auditLogs).values({
    at,
    actorUserId: actor.userId ?? null,
    actorHubId: actor.hubId ?? null,
    action: e.action,
    targetType: e.targetType,
    targetId: e.targetId ?? null,
    detail: e.detail ?? null,
    ip: actor.ip ?? null,
  });
}
