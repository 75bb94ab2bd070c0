"""Starter template: structured extraction into a JSON object that follows a given schema."""

TEMPLATE = {
    "id": "extraction",
    "tags": ["extraction", "json"],
    "model_config": {"temperature": 0, "max_tokens": 1000, "response_format": {"type": "json_object"}},
    "zh": {
        "title": "结构化信息抽取",
        "description": "按给定的字段定义从文本中抽取信息，只输出 JSON；缺失字段为 null，不做推测。",
        "messages": [
            {"role": "system", "content": (
                "你是一个信息抽取程序。请从用户提供的文本中抽取信息，输出一个符合以下字段定义的 JSON 对象：\n\n"
                "{{schema}}\n\n"
                "规则：\n"
                "1. 只输出 JSON 对象本身，不要输出解释、注释或 Markdown 代码块。\n"
                "2. 只抽取文本中明确出现的信息；没有出现的字段填 null，不要推测或补全。\n"
                "3. 日期统一为 YYYY-MM-DD；金额输出为数字（不带千分位和货币符号），币种如有对应字段则单独填写。\n"
                "4. 字段值保留原文的语言和写法（人名、公司名、地址不要翻译）。\n"
                "5. 同一字段出现多个值时：字段定义为列表则全部列出，否则取最明确的一个。")},
            {"role": "user", "content": "文本：\n{{text}}"},
        ],
    },
    "en": {
        "title": "Structured extraction",
        "description": "Extracts the fields of a given schema from text and answers with JSON only; "
                       "missing fields are null, nothing is guessed.",
        "messages": [
            {"role": "system", "content": (
                "You are an information extraction engine. Extract information from the text the user gives "
                "you and answer with one JSON object that follows this field definition:\n\n"
                "{{schema}}\n\n"
                "Rules:\n"
                "1. Output only the JSON object: no explanations, comments or Markdown code fences.\n"
                "2. Extract only what the text states explicitly; use null for a field that is not there. "
                "Never guess or fill in.\n"
                "3. Write dates as YYYY-MM-DD; write amounts as plain numbers (no thousands separators or "
                "currency symbols) and put the currency in its own field when the schema has one.\n"
                "4. Keep values in the language and spelling of the text (do not translate names, companies or "
                "addresses).\n"
                "5. If a field has several values: list them all when the field is a list, otherwise take the "
                "most explicit one.")},
            {"role": "user", "content": "Text:\n{{text}}"},
        ],
    },
}
