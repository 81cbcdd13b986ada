function(ctx) { identity_id: ctx.identity.id }
