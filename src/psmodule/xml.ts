/**
 * A minimal XML writer for the generated help and format files. Output is fully determined by its
 * input (attribute order as given, two-space indent, LF), which the "two builds, same bytes" test
 * relies on.
 */
import { AzsError } from '../errors.js';

export interface XmlElement {
  name: string;
  attrs?: Record<string, string | undefined>;
  /** Text content, or child elements; not both. */
  text?: string;
  children?: XmlNode[];
}
export type XmlNode = XmlElement | undefined | false;

// XML 1.0 forbids most control characters even as entities; a manifest holding one is a mistake.
const forbidden = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;

export function escapeXml(text: string): string {
  if (forbidden.test(text)) {
    throw new AzsError(`Text contains a character XML cannot hold: ${JSON.stringify(text.slice(0, 60))}.`, {
      errorId: 'PsModuleInvalidXmlText',
      category: 'InvalidData',
      targetObject: text,
      recommendedAction: 'Remove the control character from the manifest text.',
    });
  }
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function el(
  name: string,
  attrsOrContent?: Record<string, string | undefined> | string | XmlNode[],
  content?: string | XmlNode[],
): XmlElement {
  if (typeof attrsOrContent === 'string' || Array.isArray(attrsOrContent)) {
    content = attrsOrContent;
    attrsOrContent = undefined;
  }
  const node: XmlElement = { name, attrs: attrsOrContent };
  if (typeof content === 'string') node.text = content;
  else if (content) node.children = content;
  return node;
}

function render(node: XmlElement, depth: number, out: string[]): void {
  const pad = '  '.repeat(depth);
  const attrs = Object.entries(node.attrs ?? {})
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => ` ${k}="${escapeXml(v)}"`)
    .join('');
  const children = (node.children ?? []).filter((c): c is XmlElement => Boolean(c));
  if (node.text !== undefined && node.text !== '') {
    out.push(`${pad}<${node.name}${attrs}>${escapeXml(node.text)}</${node.name}>`);
  } else if (children.length === 0) {
    out.push(`${pad}<${node.name}${attrs} />`);
  } else {
    out.push(`${pad}<${node.name}${attrs}>`);
    for (const child of children) render(child, depth + 1, out);
    out.push(`${pad}</${node.name}>`);
  }
}

export function renderXmlDocument(root: XmlElement): string {
  const out = ['<?xml version="1.0" encoding="utf-8"?>'];
  render(root, 0, out);
  return out.join('\n') + '\n';
}
