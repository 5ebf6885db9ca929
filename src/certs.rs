//! Webhook certificates: a CA and a serving certificate for the Service name (issue 4).
