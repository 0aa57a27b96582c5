import { z } from "zod";

export const Email = z.email().max(254).transform((e) => e.toLowerCase());
export const Password = z.string().min(8, "at least 8 characters").max(128);

export const RegisterRequest = z
  .strictObject({ email: Email, password: Password, name: z.string().min(1).max(100).optional() })
  .meta({ id: "RegisterRequest" });
export type RegisterRequest = z.infer<typeof RegisterRequest>;

export const LoginRequest = z.strictObject({ email: Email, password: z.string().min(1).max(128) }).meta({ id: "LoginRequest" });
export type LoginRequest = z.infer<typeof LoginRequest>;

export const RefreshRequest = z.strictObject({ refresh_token: z.string().min(16).max(200) }).meta({ id: "RefreshRequest" });

export const User = z
  .object({
    id: z.string(),
    email: z.string(),
    name: z.string().nullable(),
    role: z.enum(["owner", "member"]),
    created_at: z.string(),
  })
  .meta({ id: "User" });
export type User = z.infer<typeof User>;

export const TokenResponse = z
  .object({
    access_token: z.string(),
    token_type: z.literal("bearer"),
    expires_in: z.number().int().meta({ description: "access token lifetime, seconds" }),
    refresh_token: z.string(),
    refresh_expires_in: z.number().int(),
  })
  .meta({ id: "TokenResponse" });
export type TokenResponse = z.infer<typeof TokenResponse>;
