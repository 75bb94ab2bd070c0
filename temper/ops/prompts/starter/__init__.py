"""The starter library's data: one module per template, each with a Chinese and an English version."""
from __future__ import annotations

from temper.ops.prompts.starter import contract_review, customer_service, extraction, insurance_qa, summarisation

TEMPLATES: list[dict] = [m.TEMPLATE for m in (customer_service, insurance_qa, contract_review, summarisation,
                                               extraction)]
