"""Waves of branches: a plan (which branches, in what order, within which window and limits), the
``migrate-wave`` flow that submits one ``migrate-branch`` flow run per branch through the deployment, and the
wave report."""
