/* Entry point for JupyterLab's style loader. */
import './base.css';
