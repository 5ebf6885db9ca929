//! The admission webhook: AdmissionReview in, decision out (issue 4).
